"""The key gate around the limiter: seeding from history, the concurrency queue, the fleet."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from better_ccflare.core import ApiKey, FakeClock, KeyLimits, RequestRecord
from better_ccflare.database import SecretKey, Store
from better_ccflare.proxy import KeyGate
from better_ccflare.proxy._key_gate import Ticket
from better_ccflare.proxy._key_limits import Limit, Refusal

T0 = 1_767_225_600_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(tmp_path / "db.sqlite", key=SecretKey.generate(), clock=FakeClock(T0))
    yield store
    await store.close()


def _key(limits: KeyLimits) -> ApiKey:
    return ApiKey(
        id="k", name="dev", hashed_key="s:h", prefix_last_8="12345678", created_at_ms=0,
        limits=limits,
    )  # fmt: skip


async def test_a_budget_spent_before_the_gate_started_counts(store: Store) -> None:
    store.requests.record(
        RequestRecord(
            id="r1", timestamp_ms=T0, method="POST", path="/v1/messages", api_key_id="k",
            cost_usd=2.0,
        )
    )  # fmt: skip
    limits = KeyLimits(budget_daily_usd=2.0)
    gate = KeyGate(store, FakeClock(T0 + 1_000))

    refusal = await gate.enter(_key(limits), limits, "m")

    assert isinstance(refusal, Refusal)
    assert refusal.limit is Limit.BUDGET_DAILY


async def test_a_waiter_takes_the_slot_a_leaving_request_frees(store: Store) -> None:
    limits = KeyLimits(max_concurrent=1)
    key = _key(limits)
    gate = KeyGate(store, FakeClock(T0))
    first = await gate.enter(key, limits, "m")
    assert isinstance(first, Ticket)

    second = asyncio.create_task(gate.enter(key, limits, "m"))
    await asyncio.sleep(0.01)
    assert not second.done()  # waiting in the queue
    gate.leave(first, None)

    assert isinstance(await asyncio.wait_for(second, 1), Ticket)


class _Unreachable:
    async def take_minute(self, key_id: str, minute: int, limit: int) -> bool:
        raise ConnectionError("the database is down")

    async def enter(self, key_id: str, limit: int, now_ms: int) -> bool:
        raise ConnectionError("the database is down")

    def leave(self, key_id: str, now_ms: int) -> None:
        raise AssertionError("never entered")

    async def heartbeat(self, now_ms: int) -> None:
        raise ConnectionError("the database is down")


async def test_when_the_shared_counts_cannot_be_reached_the_local_ones_decide(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.key_fleet = _Unreachable()
    limits = KeyLimits(rpm=1, max_concurrent=1)
    gate = KeyGate(store, FakeClock(T0))

    with caplog.at_level(logging.WARNING, "better_ccflare.proxy"):
        admitted = await gate.enter(_key(limits), limits, "m")
        refused = await gate.enter(_key(limits), limits, "m")

    assert isinstance(admitted, Ticket)
    assert not admitted.in_fleet
    assert isinstance(refused, Refusal)
    assert refused.limit is Limit.RPM  # this instance's own minute
    assert "shared store" in caplog.text
