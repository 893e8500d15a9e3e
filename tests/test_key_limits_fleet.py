"""Per-key limits hold for a fleet: two servers over one PostgreSQL database never double them.

Both servers run for real (uvicorn, the official SDK as the client) on one clock, over a fresh
database; requests alternate between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import anthropic
import pytest

from better_ccflare.core import ApiKey, ApiKeyRole, FakeClock, KeyLimits
from better_ccflare.proxy import generate_api_key, hash_api_key
from better_ccflare.server import Service
from packages.database.tests.postgres_support import (
    create_database,
    drop_database,
    postgres_server,
)

from .support.client import recorded
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json
from .support.service import console_account, running_proxy

T0 = 1_767_225_600_000 + 12 * 3_600_000 + 15_000  # 2026-01-01T12:00:15Z


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def database_url(server_url: str) -> Iterator[str]:
    url = create_database(server_url)
    try:
        yield url
    finally:
        drop_database(server_url, url)


Fleet = tuple[list[tuple[Service, str]], FakeUpstream, FakeClock]


@pytest.fixture
async def fleet(tmp_path: Path, database_url: str) -> AsyncGenerator[Fleet]:
    clock = FakeClock(T0)
    async with AsyncExitStack() as stack:
        upstream = await stack.enter_async_context(FakeUpstream())
        upstream.set_default(Reply.json(message_json()))
        servers = [
            await stack.enter_async_context(
                running_proxy(
                    tmp_path,  # one config directory: one secret key for the shared store
                    console_account(name, upstream),
                    clock=clock,
                    DATABASE_URL=database_url,
                )
            )
            for name in ("one", "two")
        ]
        yield servers, upstream, clock


async def _key(servers: list[tuple[Service, str]], limits: KeyLimits) -> str:
    store = servers[0][0].store
    text = generate_api_key()
    for name, role, key_limits in (
        ("admin", ApiKeyRole.ADMIN, None),
        ("dev", ApiKeyRole.API_ONLY, limits),
    ):
        key_text = text if name == "dev" else generate_api_key()
        await store.api_keys.add(
            ApiKey(
                id=f"id-{name}",
                name=name,
                hashed_key=hash_api_key(key_text),
                prefix_last_8=key_text[-8:],
                created_at_ms=0,
                role=role,
                limits=key_limits,
            )
        )
    for service, _ in servers:
        service.auth.invalidate()
    return text


async def _ask(url: str, key: str) -> int:
    async with anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0) as client:
        try:
            await client.messages.create(
                model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "Hi"}]
            )
        except anthropic.APIStatusError as exc:
            return exc.status_code
    return 200


async def test_requests_per_minute_are_counted_once_for_the_fleet(fleet: Fleet) -> None:
    servers, upstream, _ = fleet
    key = await _key(servers, KeyLimits(rpm=4))

    statuses = [await _ask(servers[n % 2][1], key) for n in range(8)]

    assert statuses == [200] * 4 + [429] * 4  # not 4 per server
    assert len(upstream.requests) == 4


async def test_concurrent_requests_are_capped_for_the_fleet(fleet: Fleet) -> None:
    servers, upstream, _ = fleet
    upstream.set_default(
        Reply(
            headers={"content-type": "application/json"},
            body=Reply.json(message_json()).body,
            headers_delay_s=1.0,
        )
    )
    key = await _key(servers, KeyLimits(max_concurrent=1))

    statuses = await asyncio.gather(*(_ask(url, key) for _, url in servers))

    assert sorted(statuses) == [200, 429]  # one in flight for the fleet, not one per server


async def test_a_budget_spent_on_one_server_is_enforced_by_the_other(fleet: Fleet) -> None:
    servers, upstream, _ = fleet
    (one, url_one), (two, url_two) = servers
    key = await _key(servers, KeyLimits(budget_daily_usd=0.0002))  # each request: $0.000141
    assert await _ask(url_two, key) == 200  # under budget; the second server tracks the key

    assert await _ask(url_one, key) == 200  # still under: $0.000141 spent; now $0.000282
    await recorded(one, 2)
    await two.key_gate.sync()  # what the server's key-usage-sync job does every second

    assert await _ask(url_two, key) == 429
    assert await _ask(url_one, key) == 429
    assert len(upstream.requests) == 2
