"""Liveness and readiness under the real server.

``/health`` is the liveness probe: 200 whenever the process serves, with the pool summary and a
``ready`` flag. ``/health/ready`` is the readiness probe: 503 whenever no account can serve right
now, with ``retry-after`` and ``pool.next_available_at`` when the soonest one will.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import msgspec
import pytest

from better_ccflare.core import (
    Account,
    ApiKey,
    ApiKeyRole,
    FakeClock,
    RateLimitReason,
    RateLimitState,
    UsageWindow,
)
from better_ccflare.proxy import generate_api_key, hash_api_key
from better_ccflare.server import Service

from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import message_json
from .support.service import console_account, running_proxy

NOW_MS = 1_767_225_600_000


@asynccontextmanager
async def server(
    tmp_path: Path, *accounts: Account
) -> AsyncGenerator[tuple[Service, httpx2.AsyncClient]]:
    async with (
        running_proxy(tmp_path, *accounts, clock=FakeClock(NOW_MS)) as (service, url),
        httpx2.AsyncClient(base_url=url, timeout=10) as client,
    ):
        yield service, client


@pytest.fixture
async def upstream() -> AsyncGenerator[FakeUpstream]:
    async with FakeUpstream() as fake:
        fake.set_default(Reply.json(message_json()))
        yield fake


async def test_a_fresh_server_without_accounts_is_alive_but_not_ready(tmp_path: Path) -> None:
    async with server(tmp_path) as (_, client):
        live = await client.get("/health")
        assert live.status_code == 200
        assert live.json()["ready"] is False
        assert live.json()["pool"]["configured"] == 0
        assert (await client.head("/health")).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["pool"]["next_available_at"] is None
        assert "retry-after" not in ready.headers  # nothing recovers by itself
        assert (await client.head("/health/ready")).status_code == 503


async def test_a_pool_that_can_serve_is_ready(tmp_path: Path, upstream: FakeUpstream) -> None:
    async with server(tmp_path, console_account("a", upstream)) as (_, client):
        live = (await client.get("/health")).json()
        assert (live["status"], live["ready"], live["pool"]["routable"]) == ("ok", True, 1)
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["ready"] is True
        assert (await client.head("/health/ready")).status_code == 200


async def test_every_account_paused_is_not_ready(tmp_path: Path, upstream: FakeUpstream) -> None:
    paused = msgspec.structs.replace(console_account("a", upstream), paused=True)
    async with server(tmp_path, paused) as (_, client):
        assert (await client.get("/health")).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["pool"]["paused"] == 1
        assert "retry-after" not in ready.headers


async def test_cooling_down_accounts_say_when_the_soonest_recovers(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    def cooling(name: str, seconds: int) -> Account:
        limit = RateLimitState(limited_until_ms=NOW_MS + seconds * 1000)
        return msgspec.structs.replace(console_account(name, upstream), rate_limit=limit)

    async with server(tmp_path, cooling("a", 300), cooling("b", 90)) as (_, client):
        live = await client.get("/health")
        assert live.status_code == 200
        assert live.json()["ready"] is False
        assert live.json()["pool"]["rate_limited"] == 2
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.headers["retry-after"] == "90"
        assert ready.json()["pool"]["next_available_at"] == "2026-01-01T00:01:30Z"


async def test_exhausted_usage_windows_make_the_pool_not_ready(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    async with server(tmp_path, console_account("a", upstream)) as (service, client):
        window = UsageWindow(key="five_hour", utilization=100, resets_at_ms=NOW_MS + 1_800_000)
        service.usage.update("a", [window])
        live = (await client.get("/health")).json()
        assert (live["status"], live["ready"]) == ("degraded", False)
        assert (live["pool"]["routable"], live["pool"]["usage_exhausted"]) == (0, 1)
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.headers["retry-after"] == "1800"
        assert ready.json()["pool"]["next_available_at"] == "2026-01-01T00:30:00Z"


async def test_accounts_the_breaker_flagged_are_not_ready_even_between_benches(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    def flagged(name: str, reason: RateLimitReason, until_ms: int) -> Account:
        limit = RateLimitState(limited_until_ms=until_ms, reason=reason, failures=1)
        return msgspec.structs.replace(console_account(name, upstream), rate_limit=limit)

    # The refused key's bench is over (a probe may pass); the one without credit is benched.
    rejected = flagged("a", RateLimitReason.CREDENTIALS_REJECTED, NOW_MS - 1)
    broke = flagged("b", RateLimitReason.OUT_OF_CREDITS, NOW_MS + 600_000)
    async with server(tmp_path, rejected, broke) as (_, client):
        live = await client.get("/health")
        assert live.status_code == 200
        pool = live.json()["pool"]
        assert (pool["routable"], pool["credentials_rejected"], pool["out_of_credits"]) == (0, 1, 1)
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["pool"]["next_available_at"] is None
        assert "retry-after" not in ready.headers  # new credentials or credit: someone must act


async def test_the_probes_need_no_api_key(tmp_path: Path, upstream: FakeUpstream) -> None:
    key = generate_api_key()
    async with server(tmp_path, console_account("a", upstream)) as (service, client):
        await service.store.api_keys.add(
            ApiKey(
                id="k",
                name="admin",
                hashed_key=hash_api_key(key),
                prefix_last_8=key[-8:],
                created_at_ms=0,
                role=ApiKeyRole.ADMIN,
            )
        )
        service.auth.invalidate()
        assert (await client.get("/api/accounts")).status_code == 401
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/health/ready")).status_code == 200
