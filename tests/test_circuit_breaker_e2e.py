"""The circuit breaker end to end: the real service under uvicorn, fake upstreams on loopback,
the official ``anthropic`` SDK as the client.

Accounts that fail rather than answer (a refused key, a black hole, no credit) stop costing
every request, and say so in ``/health``, the management API and the log.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from better_ccflare.core import Account, Credentials, FakeClock, ProviderKind
from better_ccflare.server import Service

from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json
from .support.service import console_account, running_proxy


async def ask(url: str) -> str:
    async with anthropic.AsyncAnthropic(base_url=url, api_key="client-key", max_retries=0) as sdk:
        message = await sdk.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
        )
    block = message.content[0]
    assert isinstance(block, anthropic.types.TextBlock)
    return block.text


async def get(url: str) -> Any:
    async with httpx2.AsyncClient() as client:
        return (await client.get(url, timeout=10)).json()


def error(status: int, kind: str, message: str = "no") -> Reply:
    return Reply.json({"type": "error", "error": {"type": kind, "message": message}}, status=status)


async def account_state(url: str, name: str) -> str:
    [found] = [a for a in await get(f"{url}/api/accounts") if a["name"] == name]
    return found["state"]


async def settled(service: Service) -> None:
    """Let the writes behind reach the store, as the dashboard and the CLI read it there."""
    await service.pool.drain()


async def test_the_accounts_list_waits_for_a_cooldown_still_on_its_way_to_the_store(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as revoked:
        revoked.set_default(error(401, "authentication_error", "invalid x-api-key"))
        async with running_proxy(tmp_path, console_account("a", revoked)) as (service, url):
            # Another process holds the database's write lock, so the cooldown's write waits.
            other = sqlite3.connect(service.config.db_path, isolation_level=None)  # noqa: TID251 (another process's view)
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(anthropic.APIStatusError):
                await ask(url)
            listing = asyncio.create_task(account_state(url, "a"))
            await asyncio.sleep(0.3)
            assert not listing.done()  # not the state from before the failure

            other.execute("COMMIT")
            other.close()
            async with asyncio.timeout(10):
                assert await listing == "credentials_rejected"


async def test_a_refused_key_is_benched_flagged_and_logged_once_until_it_is_reset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeUpstream() as revoked, FakeUpstream() as healthy:
        revoked.set_default(error(401, "authentication_error", "invalid x-api-key"))
        healthy.set_default(Reply.json(message_json("from b")))
        accounts = (console_account("a", revoked, 0), console_account("b", healthy, 1))
        async with running_proxy(tmp_path, *accounts) as (service, url):
            with caplog.at_level(logging.INFO, logger="better_ccflare.proxy"):
                assert [await ask(url) for _ in range(3)] == ["from b"] * 3
            assert len(revoked.requests) == 1
            health = await get(f"{url}/health")
            assert (health["pool"]["routable"], health["pool"]["credentials_rejected"]) == (1, 1)
            await settled(service)
            assert await account_state(url, "a") == "credentials_rejected"

            async with httpx2.AsyncClient() as client:
                reset = await client.post(f"{url}/api/accounts/a/force-reset-rate-limit")
            assert reset.is_success
            await service.pool.reload()  # the server's reload job does this every 2 s
            health = await get(f"{url}/health")
            assert (health["pool"]["routable"], health["pool"]["credentials_rejected"]) == (2, 0)
            assert await account_state(url, "a") == "ready"

    warnings = [r for r in caplog.records if r.getMessage().startswith("Credentials rejected")]
    assert [r.levelname for r in warnings] == ["WARNING"]
    failovers = [r for r in caplog.records if r.getMessage().startswith("Failover")]
    assert [vars(r)["data"]["reason"] for r in failovers] == ["credentials_rejected"]


async def test_a_slow_account_costs_only_the_first_request_its_timeout(tmp_path: Path) -> None:
    async with FakeUpstream() as slow, FakeUpstream() as healthy:
        slow.set_default(Reply(headers_delay_s=5.0))
        healthy.set_default(Reply.json(message_json("quick")))
        accounts = (console_account("slow", slow, 0), console_account("quick", healthy, 1))
        async with running_proxy(
            tmp_path, *accounts, BETTER_CCFLARE_FIRST_BYTE_TIMEOUT_MS="1000"
        ) as (service, url):
            assert await ask(url) == "quick"
            started = time.monotonic()
            assert await ask(url) == "quick"
            assert time.monotonic() - started < 0.8
            assert len(slow.requests) == 1
            await settled(service)
            assert await account_state(url, "slow") == "cooling_down"


async def test_a_dead_endpoint_is_skipped_until_its_cooldown_ends(tmp_path: Path) -> None:
    clock = FakeClock(now_ms=int(time.time()) * 1000)
    dead = Account(
        id="dead",
        name="dead",
        provider=ProviderKind.CONSOLE.value,
        created_at_ms=0,
        custom_endpoint="http://127.0.0.1:9",
        credentials=Credentials(api_key="k"),
    )
    async with FakeUpstream() as healthy:
        healthy.set_default(Reply.json(message_json("served")))
        accounts = (dead, console_account("ok", healthy, 1))
        async with running_proxy(tmp_path, *accounts, clock=clock) as (service, url):
            assert await ask(url) == "served"
            clock.advance(1)  # the records' ids order them by time
            assert await ask(url) == "served"
            await settled(service)
            first, second = await service.store.requests.list_recent(2)
            assert (second.failover_attempts, first.failover_attempts) == (1, 0)
            stored = await service.store.accounts.get("dead")
            assert stored is not None
            assert stored.rate_limit.limited_until_ms == clock.now_ms() - 1 + 5_000
            clock.advance(5_000)
            assert await ask(url) == "served"
            await settled(service)
            [latest] = await service.store.requests.list_recent(1)
            assert latest.failover_attempts == 1  # the dead account was tried again, once


async def test_an_account_without_credit_is_benched_until_a_probe_finds_credit(
    tmp_path: Path,
) -> None:
    clock = FakeClock(now_ms=int(time.time()) * 1000)
    async with FakeUpstream() as broke, FakeUpstream() as backup:
        broke.enqueue(
            error(400, "invalid_request_error", "Your credit balance is too low to access the API.")
        )
        broke.set_default(Reply.json(message_json("topped up")))
        backup.set_default(Reply.json(message_json("backup")))
        accounts = (console_account("broke", broke, 0), console_account("b", backup, 1))
        async with running_proxy(tmp_path, *accounts, clock=clock) as (service, url):
            assert [await ask(url), await ask(url)] == ["backup", "backup"]
            assert len(broke.requests) == 1
            assert (await get(f"{url}/health"))["pool"]["out_of_credits"] == 1
            await settled(service)
            assert await account_state(url, "broke") == "out_of_credits"

            clock.advance(600_000)  # the bench ends: the next request is the probe
            assert await ask(url) == "topped up"
            await settled(service)
            assert await account_state(url, "broke") == "ready"
