"""The auto-refresh scheduler: who is probed, what a probe looks like, and what answers do."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from better_ccflare.core import (
    Account,
    Credentials,
    FakeClock,
    PauseReason,
    ProviderKind,
    RateLimitState,
)
from better_ccflare.database import SecretKey, Store
from better_ccflare.providers import ProviderRegistry, UpstreamRequest
from better_ccflare.proxy._account_pool import AccountPool
from better_ccflare.proxy._token_manager import CredentialsUnavailableError
from better_ccflare.proxy._transport import (
    Timeouts,
    UpstreamConnectError,
    UpstreamResponse,
    UpstreamTimeoutError,
    UpstreamTransport,
)
from better_ccflare.proxy.jobs._auto_refresh import (
    FAILURE_THRESHOLD,
    PROBE_MODELS,
    PROBE_PROMPTS,
    UNCOUNTED_BACKOFF_MS,
    AutoRefreshScheduler,
)

NOW = 1_800_000_000_000
MINUTE = 60_000
HOUR = 60 * MINUTE
WINDOW = 5 * HOUR


class FakeResponse(UpstreamResponse):
    def __init__(self, status: int, headers: Sequence[tuple[str, str]] = (), body: bytes = b""):
        self.status = status
        self.headers = list(headers)
        self._body = body
        self.closed = False

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        yield self._body

    async def aread(self) -> bytes:
        return self._body

    async def aclose(self) -> None:
        self.closed = True


Scripted = FakeResponse | Exception | Callable[[], FakeResponse]


class FakeTransport(UpstreamTransport):
    """Answers from a script; when it runs dry, a 200 opening a five-hour window."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.script: list[Scripted] = []
        self.sent: list[tuple[UpstreamRequest, Timeouts]] = []
        self.responses: list[FakeResponse] = []

    async def send(self, request: UpstreamRequest, timeouts: Timeouts) -> UpstreamResponse:
        self.sent.append((request, timeouts))
        item = self.script.pop(0) if self.script else self.ok
        if isinstance(item, Exception):
            raise item
        response = item if isinstance(item, FakeResponse) else item()
        self.responses.append(response)
        return response

    def ok(self) -> FakeResponse:
        reset_s = (self.clock.now_ms() + WINDOW) // 1000
        return FakeResponse(
            200,
            [
                ("anthropic-ratelimit-unified-status", "allowed"),
                ("anthropic-ratelimit-unified-reset", str(reset_s)),
            ],
            b'{"type":"message"}',
        )

    async def aclose(self) -> None:
        pass


class FakeCredentials:
    def __init__(self) -> None:
        self.error: Exception | None = None

    async def credentials_for(self, account: Account) -> Credentials:
        if self.error is not None:
            raise self.error
        if account.provider == ProviderKind.ZAI.value:
            return Credentials(api_key=f"key-{account.id}")
        return Credentials(access_token=f"fresh-{account.id}", refresh_token="r")

    async def force_refresh(self, account: Account, rejected: Credentials) -> Credentials:
        return await self.credentials_for(account)


class FakeSleep:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.clock.advance(round(seconds * 1000))
        await asyncio.sleep(0)


def make_account(account_id: str = "a", **fields: Any) -> Account:
    base = Account(
        id=account_id,
        name=f"name-{account_id}",
        provider=ProviderKind.CLAUDE_OAUTH.value,
        created_at_ms=NOW - HOUR,
        credentials=Credentials(access_token="stored", refresh_token="r"),
        auto_refresh_enabled=True,
    )
    return msgspec.structs.replace(base, **fields)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "db.sqlite", key=SecretKey.generate(), clock=clock)
    yield opened
    await opened.close()


@pytest.fixture
def pool(store: Store, clock: FakeClock) -> AccountPool:
    return AccountPool(store, clock, session_duration_ms=WINDOW)


@pytest.fixture
def transport(clock: FakeClock) -> FakeTransport:
    return FakeTransport(clock)


@pytest.fixture
def credentials() -> FakeCredentials:
    return FakeCredentials()


@pytest.fixture
def scheduler(
    pool: AccountPool,
    store: Store,
    clock: FakeClock,
    transport: FakeTransport,
    credentials: FakeCredentials,
) -> AutoRefreshScheduler:
    return AutoRefreshScheduler(
        pool=pool,
        providers=ProviderRegistry(plugins=[], environ={}),
        transport=transport,
        credentials=credentials,
        store=store,
        clock=clock,
        sleep=FakeSleep(clock),
        rng=random.Random(7),
    )


async def add(store: Store, pool: AccountPool, *accounts: Account) -> None:
    for account in accounts:
        await store.accounts.add(account)
    await pool.reload()


def stored_account(pool: AccountPool, account_id: str = "a") -> Account:
    account = pool.get(account_id)
    assert account is not None
    return account


async def test_an_eligible_account_is_probed_once_per_reset(
    scheduler: AutoRefreshScheduler, store: Store, pool: AccountPool, clock: FakeClock
) -> None:
    await add(store, pool, make_account())
    assert await scheduler.tick() == 1
    clock.advance(MINUTE)
    assert await scheduler.tick() == 0
    clock.advance(WINDOW - MINUTE - 1)
    assert await scheduler.tick() == 0
    clock.advance(1)
    assert await scheduler.tick() == 1


async def test_an_account_whose_stored_reset_has_passed_is_probed(
    scheduler: AutoRefreshScheduler, store: Store, pool: AccountPool
) -> None:
    await add(store, pool, make_account(rate_limit=RateLimitState(reset_at_ms=NOW - MINUTE)))
    assert await scheduler.tick() == 1


async def test_a_success_stores_the_new_reset_in_the_pool_and_the_store(
    scheduler: AutoRefreshScheduler, store: Store, pool: AccountPool
) -> None:
    await add(store, pool, make_account(rate_limit=RateLimitState(reset_at_ms=NOW - HOUR)))
    await scheduler.tick()
    assert stored_account(pool).rate_limit.reset_at_ms == NOW + WINDOW
    await pool.drain()
    saved = await store.accounts.get("a")
    assert saved is not None
    assert saved.rate_limit.reset_at_ms == NOW + WINDOW


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"auto_refresh_enabled": False}, id="auto-refresh-off"),
        pytest.param({"paused": True, "pause_reason": PauseReason.MANUAL}, id="paused-manually"),
        pytest.param({"requires_reauth": True}, id="requires-reauth"),
        pytest.param(
            {"rate_limit": RateLimitState(limited_until_ms=NOW + MINUTE)}, id="cooling-down"
        ),
        pytest.param({"rate_limit": RateLimitState(reset_at_ms=NOW + HOUR)}, id="window-open"),
        pytest.param(
            {
                "provider": ProviderKind.CONSOLE.value,
                "credentials": Credentials(api_key="k"),
            },
            id="other-provider",
        ),
    ],
)
async def test_ineligible_accounts_are_skipped(
    scheduler: AutoRefreshScheduler,
    store: Store,
    pool: AccountPool,
    transport: FakeTransport,
    fields: dict[str, Any],
) -> None:
    await add(store, pool, make_account(**fields))
    assert await scheduler.tick() == 0
    assert transport.sent == []


async def test_zai_accounts_are_probed_with_their_api_key(
    scheduler: AutoRefreshScheduler, store: Store, pool: AccountPool, transport: FakeTransport
) -> None:
    await add(
        store,
        pool,
        make_account(provider=ProviderKind.ZAI.value, credentials=Credentials(api_key="old")),
    )
    assert await scheduler.tick() == 1
    request, _ = transport.sent[0]
    assert request.headers["x-api-key"] == "key-a"


async def test_the_probe_imitates_claude_code_with_fresh_credentials(
    scheduler: AutoRefreshScheduler, store: Store, pool: AccountPool, transport: FakeTransport
) -> None:
    await add(store, pool, make_account())
    await scheduler.tick()
    [(request, timeouts)] = transport.sent
    assert request.method == "POST"
    assert request.url.endswith("/v1/messages")
    headers = request.headers
    assert headers["authorization"] == "Bearer fresh-a"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "oauth-2025-04-20" in headers["anthropic-beta"].split(",")
    assert headers["user-agent"].startswith("claude-cli/")
    assert headers["user-agent"].endswith(" (external, cli)")
    assert headers["x-app"] == "cli"
    body = json.loads(request.body)
    assert body["model"] == PROBE_MODELS[0]
    assert body["max_tokens"] == 10
    [message] = body["messages"]
    assert message["role"] == "user"
    assert message["content"] in PROBE_PROMPTS
    assert timeouts.first_byte_s == 30.0
    assert transport.responses[0].closed


async def test_probes_are_not_counted_as_user_requests(
    scheduler: AutoRefreshScheduler, store: Store, pool: AccountPool
) -> None:
    await add(store, pool, make_account())
    await scheduler.tick()
    await pool.drain()
    account = stored_account(pool)
    assert (account.request_count, account.total_requests, account.last_used_ms) == (0, 0, None)


async def test_a_401_turns_auto_refresh_off(
    scheduler: AutoRefreshScheduler,
    store: Store,
    pool: AccountPool,
    transport: FakeTransport,
    clock: FakeClock,
) -> None:
    await add(store, pool, make_account())
    transport.script.append(FakeResponse(401))
    assert await scheduler.tick() == 1
    saved = await store.accounts.get("a")
    assert saved is not None
    assert not saved.auto_refresh_enabled
    clock.advance(HOUR)
    assert await scheduler.tick() == 0


async def test_a_529_backs_off_along_the_ladder(
    scheduler: AutoRefreshScheduler,
    store: Store,
    pool: AccountPool,
    transport: FakeTransport,
    clock: FakeClock,
) -> None:
    await add(store, pool, make_account())
    ladder = [*UNCOUNTED_BACKOFF_MS, UNCOUNTED_BACKOFF_MS[-1]]
    transport.script.extend(FakeResponse(529) for _ in ladder)
    for wait in ladder:
        assert await scheduler.tick() == 1
        assert scheduler.backoff_until_ms("a") == clock.now_ms() + wait
        clock.advance(wait - 1)
        assert await scheduler.tick() == 0
        clock.advance(1)
    assert scheduler.failures("a") == 0
    assert await scheduler.tick() == 1
    assert scheduler.backoff_until_ms("a") is None


@pytest.mark.parametrize(
    "error",
    [UpstreamConnectError("refused"), UpstreamTimeoutError("first_byte")],
    ids=["connect-error", "timeout"],
)
async def test_no_response_is_an_uncounted_failure(
    scheduler: AutoRefreshScheduler,
    store: Store,
    pool: AccountPool,
    transport: FakeTransport,
    clock: FakeClock,
    error: Exception,
) -> None:
    await add(store, pool, make_account())
    transport.script.append(error)
    assert await scheduler.tick() == 1
    assert scheduler.backoff_until_ms("a") == clock.now_ms() + MINUTE
    assert scheduler.failures("a") == 0


async def test_five_counted_failures_pause_the_account(
    scheduler: AutoRefreshScheduler,
    store: Store,
    pool: AccountPool,
    transport: FakeTransport,
    clock: FakeClock,
) -> None:
    await add(store, pool, make_account())
    transport.script.extend(FakeResponse(500) for _ in range(FAILURE_THRESHOLD))
    for attempt in range(1, FAILURE_THRESHOLD + 1):
        assert not stored_account(pool).paused
        assert await scheduler.tick() == 1
        assert scheduler.failures("a") == attempt
        clock.advance(MINUTE)
    assert stored_account(pool).pause_reason is PauseReason.FAILURE_THRESHOLD
    saved = await store.accounts.get("a")
    assert saved is not None
    assert (saved.paused, saved.pause_reason) == (True, PauseReason.FAILURE_THRESHOLD)


async def test_an_account_paused_for_failures_is_probed_every_ten_minutes_and_resumed(
    scheduler: AutoRefreshScheduler,
    store: Store,
    pool: AccountPool,
    transport: FakeTransport,
    clock: FakeClock,
) -> None:
    await add(store, pool, make_account(paused=True, pause_reason=PauseReason.FAILURE_THRESHOLD))
    transport.script.append(FakeResponse(500))
    assert await scheduler.tick() == 1
    clock.advance(10 * MINUTE - 1)
    assert await scheduler.tick() == 0
    clock.advance(1)
    assert await scheduler.tick() == 1
    assert not stored_account(pool).paused
    assert scheduler.failures("a") == 0
    saved = await store.accounts.get("a")
    assert saved is not None
    assert (saved.paused, saved.pause_reason) == (False, None)


async def test_a_rate_limited_answer_records_its_reset_without_counting_a_failure(
    scheduler: AutoRefreshScheduler,
    store: Store,
    pool: AccountPool,
    transport: FakeTransport,
) -> None:
    await add(store, pool, make_account())
    reset_s = (NOW + 2 * HOUR) // 1000
    transport.script.append(
        FakeResponse(
            429,
            [
                ("anthropic-ratelimit-unified-status", "rejected"),
                ("anthropic-ratelimit-unified-reset", str(reset_s)),
            ],
        )
    )
    assert await scheduler.tick() == 1
    assert scheduler.failures("a") == 0
    assert stored_account(pool).rate_limit.reset_at_ms == reset_s * 1000


async def test_a_missing_model_falls_back_to_the_next(
    scheduler: AutoRefreshScheduler, store: Store, pool: AccountPool, transport: FakeTransport
) -> None:
    await add(store, pool, make_account())
    transport.script.append(FakeResponse(404))
    assert await scheduler.tick() == 1
    models = [json.loads(request.body)["model"] for request, _ in transport.sent]
    assert models == list(PROBE_MODELS[:2])
    assert scheduler.failures("a") == 0


async def test_credentials_needing_a_new_login_send_nothing(
    scheduler: AutoRefreshScheduler,
    store: Store,
    pool: AccountPool,
    transport: FakeTransport,
    credentials: FakeCredentials,
) -> None:
    account = make_account()
    await add(store, pool, account)
    credentials.error = CredentialsUnavailableError(account, "dead token", reauth_required=True)
    assert await scheduler.tick() == 0
    assert transport.sent == []


async def test_its_job_ticks_in_the_background_until_stopped(
    scheduler: AutoRefreshScheduler, store: Store, pool: AccountPool, transport: FakeTransport
) -> None:
    await add(store, pool, make_account())
    scheduler.job.start()
    try:
        async with asyncio.timeout(5):
            while not transport.sent:  # noqa: ASYNC110 (the state belongs to the code under test)
                await asyncio.sleep(0.001)
    finally:
        await scheduler.job.stop()
    assert not scheduler.job.started
    assert len(transport.sent) == 1
