"""Usage polling, the periodic job runner, maintenance jobs and token health."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest

from better_ccflare.core import (
    Account,
    Config,
    Credentials,
    FakeClock,
    UsageSnapshot,
    UsageWindow,
    load_config,
)
from better_ccflare.database import SecretKey, Store
from better_ccflare.providers import Provider, ProviderRegistry, UsageFetchError
from better_ccflare.proxy._usage_cache import DEFAULT_USAGE_TTL_MS, UsageCache
from better_ccflare.proxy.admin._token_health import (
    TokenHealthStatus,
    check_token_health,
    token_health,
)
from better_ccflare.proxy.jobs import BackgroundJobs, JobLeadership, PeriodicJob, UsagePoller

NOW = 1_800_000_000_000
HOUR = 3_600_000
DAY = 24 * HOUR
INTERVAL = 90_000
WINDOWS = (UsageWindow(key="five_hour", utilization=42.0, resets_at_ms=NOW + 5 * HOUR),)

Script = tuple[UsageWindow, ...] | UsageFetchError


class FakeProvider(Provider):
    id = "fake"
    display_name = "Fake"

    def __init__(self) -> None:
        self.script: list[Script] = []
        self.calls: list[tuple[str, Credentials, int]] = []

    def base_url(self, account: Account) -> str:
        return "https://fake.invalid"

    async def fetch_usage(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> tuple[UsageWindow, ...] | None:
        self.calls.append((account.id, account.credentials, now_ms))
        item = self.script.pop(0) if self.script else WINDOWS
        if isinstance(item, UsageFetchError):
            raise item
        return item


class NoUsageProvider(Provider):
    id = "no-usage"
    display_name = "No usage endpoint"

    def __init__(self) -> None:
        self.calls = 0

    def base_url(self, account: Account) -> str:
        return "https://none.invalid"

    async def fetch_usage(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> tuple[UsageWindow, ...] | None:
        self.calls += 1
        return None


class FakeSleep:
    """Advances the fake clock instead of waiting, then yields to the event loop."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(round(seconds * 1000))
        await asyncio.sleep(0)


def account(account_id: str = "a", *, provider: str = "fake", **fields: Any) -> Account:
    base = Account(
        id=account_id,
        name=f"name-{account_id}",
        provider=provider,
        created_at_ms=NOW,
        credentials=Credentials(access_token="stale", refresh_token="r"),
    )
    return msgspec.structs.replace(base, **fields)


async def until(condition: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
    """Let background tasks run until ``condition`` holds (bounded, so a bug cannot hang)."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 (the state belongs to the code under test)
            await asyncio.sleep(0.001)


FRESH = Credentials(access_token="fresh", refresh_token="r")


async def fresh_credentials(account: Account) -> Credentials:
    return FRESH


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def sleep(clock: FakeClock) -> FakeSleep:
    return FakeSleep(clock)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def no_usage() -> NoUsageProvider:
    return NoUsageProvider()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config({"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, cwd=tmp_path)


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "db.sqlite", key=SecretKey.generate(), clock=clock)
    yield opened
    await opened.close()


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise AssertionError(f"no network in tests: {request.url}")

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(refuse)) as opened:
        yield opened


class Pool:
    def __init__(self, *accounts: Account) -> None:
        self.accounts = list(accounts)

    def __call__(self) -> list[Account]:
        return self.accounts


@pytest.fixture
def pool() -> Pool:
    return Pool(account("a"))


@pytest.fixture
def cache(clock: FakeClock) -> UsageCache:
    return UsageCache(clock=clock)


@pytest.fixture
def poller(
    pool: Pool,
    provider: FakeProvider,
    no_usage: NoUsageProvider,
    cache: UsageCache,
    store: Store,
    client: httpx2.AsyncClient,
    clock: FakeClock,
    sleep: FakeSleep,
) -> UsagePoller:
    return UsagePoller(
        accounts=pool,
        providers=ProviderRegistry(builtins=[provider, no_usage], plugins=[]),
        credentials_for=fresh_credentials,
        cache=cache,
        store=store,
        client=client,
        clock=clock,
        interval_ms=INTERVAL,
        sleep=sleep,
        rng=random.Random(7),
    )


# --------------------------------------------------------------------------- polling


async def test_poll_feeds_the_cache_with_fresh_credentials(
    poller: UsagePoller, provider: FakeProvider, cache: UsageCache
) -> None:
    await poller.tick()
    assert provider.calls == [("a", FRESH, NOW)]
    assert cache.usage_map()["a"].utilization == 42.0


async def test_success_is_stored_as_a_snapshot(poller: UsagePoller, store: Store) -> None:
    await poller.tick()
    await store.flush()
    assert await store.usage.latest("a") == UsageSnapshot(
        account_id="a", timestamp_ms=NOW, windows=WINDOWS
    )


async def test_next_poll_is_the_interval_within_twenty_percent(
    poller: UsagePoller, clock: FakeClock, provider: FakeProvider
) -> None:
    delays: list[int] = []
    for _ in range(200):
        await poller.tick()
        due = poller.due_at_ms("a")
        assert due is not None
        delays.append(due - clock.now_ms())
        clock.set(due)
    assert all(0.8 * INTERVAL <= d <= 1.2 * INTERVAL for d in delays)
    assert len(set(delays)) > 10
    assert len(provider.calls) == 200


async def test_not_polled_before_due(
    poller: UsagePoller, clock: FakeClock, provider: FakeProvider
) -> None:
    await poller.tick()
    clock.advance(int(0.8 * INTERVAL) - 1)
    await poller.tick()
    assert len(provider.calls) == 1


async def test_new_accounts_start_staggered(
    poller: UsagePoller, pool: Pool, provider: FakeProvider
) -> None:
    pool.accounts = [account("a"), account("b"), account("c")]
    wait = await poller.tick()
    assert [call[0] for call in provider.calls] == ["a"]
    assert poller.due_at_ms("b") == NOW + 5_000
    assert poller.due_at_ms("c") == NOW + 10_000
    assert wait == 5_000


async def test_failures_back_off_exponentially_up_to_thirty_minutes(
    poller: UsagePoller, clock: FakeClock, provider: FakeProvider
) -> None:
    provider.script = [UsageFetchError("down", status=500)] * 8
    delays: list[int] = []
    for _ in range(8):
        await poller.tick()
        due = poller.due_at_ms("a")
        assert due is not None
        delays.append(due - clock.now_ms())
        clock.set(due)
    assert delays == [180_000, 360_000, 720_000, 1_440_000] + [1_800_000] * 4
    assert poller.failures("a") == 8


async def test_retry_after_takes_precedence_over_backoff(
    poller: UsagePoller, clock: FakeClock, provider: FakeProvider
) -> None:
    provider.script = [
        UsageFetchError("down", status=500),
        UsageFetchError("slow down", status=429, retry_after_ms=7_000),
    ]
    await poller.tick()
    clock.set(poller.due_at_ms("a") or 0)
    await poller.tick()
    assert poller.due_at_ms("a") == clock.now_ms() + 7_000


async def test_success_ends_the_backoff(
    poller: UsagePoller, clock: FakeClock, provider: FakeProvider
) -> None:
    provider.script = [UsageFetchError("down")] * 3
    for _ in range(4):
        await poller.tick()
        clock.set(poller.due_at_ms("a") or 0)
    assert poller.failures("a") == 0
    assert len(provider.calls) == 4


async def test_credential_failure_backs_off(
    provider: FakeProvider,
    pool: Pool,
    cache: UsageCache,
    store: Store,
    client: httpx2.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(account: Account) -> Credentials:
        raise RuntimeError("secret-token-in-message")

    failing = UsagePoller(
        accounts=pool,
        providers=ProviderRegistry(builtins=[provider], plugins=[]),
        credentials_for=broken,
        cache=cache,
        store=store,
        client=client,
        clock=FakeClock(NOW),
        interval_ms=INTERVAL,
    )
    with caplog.at_level("WARNING", logger="better_ccflare.proxy"):
        await failing.tick()
    assert failing.failures("a") == 1
    assert provider.calls == []
    assert "RuntimeError" in caplog.text
    assert "secret" not in caplog.text


@pytest.mark.parametrize(
    "fields", [{"paused": True}, {"requires_reauth": True}], ids=["paused", "reauth"]
)
async def test_unusable_accounts_are_skipped_until_usable(
    poller: UsagePoller, pool: Pool, provider: FakeProvider, fields: dict[str, Any]
) -> None:
    pool.accounts = [account("a", **fields)]
    assert await poller.tick() == 5_000
    assert provider.calls == []
    pool.accounts = [account("a")]
    await poller.tick()
    assert len(provider.calls) == 1


async def test_provider_without_usage_endpoint_is_never_polled_again(
    poller: UsagePoller, pool: Pool, no_usage: NoUsageProvider, clock: FakeClock
) -> None:
    pool.accounts = [account("x", provider="no-usage"), account("y", provider="no-usage")]
    for _ in range(20):
        await poller.tick()
        clock.advance(HOUR)
    assert no_usage.calls == 1
    assert poller.due_at_ms("x") is None


async def test_removed_account_is_forgotten(
    poller: UsagePoller, pool: Pool, cache: UsageCache
) -> None:
    await poller.tick()
    pool.accounts = []
    await poller.tick()
    assert poller.due_at_ms("a") is None
    assert cache.usage_map() == {}


async def test_run_loop_polls_on_schedule_and_stops(
    poller: UsagePoller, provider: FakeProvider, sleep: FakeSleep
) -> None:
    poller.start()
    await until(lambda: len(provider.calls) >= 5)
    await poller.stop()
    times = [call[2] for call in provider.calls]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.8 * INTERVAL <= gap <= 1.2 * INTERVAL + 5_000 for gap in gaps)
    assert max(sleep.calls) <= 5.0


# --------------------------------------------------------------------------- PeriodicJob


async def test_job_runs_at_start_then_every_interval(clock: FakeClock, sleep: FakeSleep) -> None:
    seen: list[int] = []

    async def work() -> None:
        seen.append(clock.now_ms())

    job = PeriodicJob("j", HOUR, work, run_at_start=True, sleep=sleep)
    job.start()
    await until(lambda: len(seen) >= 3)
    await job.stop()
    assert seen[:3] == [NOW, NOW + HOUR, NOW + 2 * HOUR]


async def test_job_without_run_at_start_waits_an_interval(
    clock: FakeClock, sleep: FakeSleep
) -> None:
    seen: list[int] = []

    async def work() -> None:
        seen.append(clock.now_ms())

    job = PeriodicJob("j", HOUR, work, sleep=sleep)
    job.start()
    await until(lambda: bool(seen))
    await job.stop()
    assert seen[0] == NOW + HOUR


async def test_job_never_overlaps_itself(sleep: FakeSleep) -> None:
    release = asyncio.Event()
    active = 0
    peak = 0

    async def slow() -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await release.wait()
        active -= 1

    job = PeriodicJob("slow", 1_000, slow, run_at_start=True, sleep=sleep)
    job.start()
    await until(lambda: job.running)
    assert await job.run_now() is False
    for _ in range(10):
        await asyncio.sleep(0)
    assert sleep.calls == []
    release.set()
    await until(lambda: job.runs >= 3)
    await job.stop()
    assert peak == 1


async def test_job_survives_exceptions(sleep: FakeSleep) -> None:
    errors_before_run: list[str | None] = []

    async def flaky() -> str:
        errors_before_run.append(job.last_error)
        if len(errors_before_run) <= 2:
            raise RuntimeError("boom")
        return "ok"

    job = PeriodicJob("flaky", 1_000, flaky, run_at_start=True, sleep=sleep)
    job.start()
    await until(lambda: job.runs >= 3)
    await job.stop()
    assert errors_before_run[:3] == [None, "RuntimeError: boom", "RuntimeError: boom"]
    assert job.last_error is None
    assert job.last_result == "ok"


async def test_stop_cancels_a_run_in_progress_cleanly() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job = PeriodicJob("forever", 1_000, forever, run_at_start=True)
    job.start()
    await until(lambda: job.running)
    await job.stop()
    assert cancelled.is_set()
    assert not job.started
    assert not job.running
    await job.stop()


# --------------------------------------------------------------------------- token health


def oauth_account(issued_at_ms: int | None, **fields: Any) -> Account:
    return account(
        "t",
        credentials=Credentials(refresh_token="r", refresh_token_issued_at_ms=issued_at_ms),
        **fields,
    )


@pytest.mark.parametrize(
    ("age_ms", "status"),
    [
        (0, TokenHealthStatus.HEALTHY),
        (60 * DAY, TokenHealthStatus.HEALTHY),
        (60 * DAY + 1, TokenHealthStatus.WARNING),
        (83 * DAY - 1, TokenHealthStatus.WARNING),
        (83 * DAY, TokenHealthStatus.WARNING),
        (87 * DAY - 1, TokenHealthStatus.WARNING),
        (87 * DAY, TokenHealthStatus.CRITICAL),
        (90 * DAY - 1, TokenHealthStatus.CRITICAL),
        (90 * DAY, TokenHealthStatus.EXPIRED),
        (400 * DAY, TokenHealthStatus.EXPIRED),
    ],
)
def test_token_health_boundaries(age_ms: int, status: TokenHealthStatus) -> None:
    report = token_health(oauth_account(NOW - age_ms), NOW)
    assert report.status is status
    assert report.remaining_ms == 90 * DAY - age_ms


def test_token_age_falls_back_to_account_creation() -> None:
    report = token_health(oauth_account(None, created_at_ms=NOW - 88 * DAY), NOW)
    assert report.status is TokenHealthStatus.CRITICAL
    assert report.issued_at_ms == NOW - 88 * DAY


def test_api_key_account_has_no_refresh_token() -> None:
    report = token_health(account("k", credentials=Credentials(api_key="sk-secret")), NOW)
    assert report.status is TokenHealthStatus.NO_REFRESH_TOKEN
    assert report.expires_at_ms is None


def test_token_health_logs_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    accounts = [
        account(
            "old",
            credentials=Credentials(refresh_token="rt-SECRET", access_token="at-SECRET"),
            created_at_ms=NOW - 89 * DAY,
        ),
        account("gone", requires_reauth=True),
    ]
    with caplog.at_level("WARNING", logger="better_ccflare.proxy"):
        reports = check_token_health(accounts, NOW)
    assert [r.status for r in reports] == [TokenHealthStatus.CRITICAL, TokenHealthStatus.HEALTHY]
    assert "name-old" in caplog.text
    assert "name-gone" in caplog.text
    assert "SECRET" not in caplog.text
    assert "SECRET" not in repr(reports)


# --------------------------------------------------------------------------- BackgroundJobs


async def test_retention_deletes_old_usage_snapshots(
    store: Store, config: Config, clock: FakeClock
) -> None:
    old = UsageSnapshot(account_id="a", timestamp_ms=NOW - 100 * DAY, windows=WINDOWS)
    await store.usage.record(old)
    await store.flush()
    jobs = BackgroundJobs(store=store, config=config, clock=clock)
    result = await jobs.run_retention()
    assert result.usage_snapshots_deleted == 1
    assert await store.usage.latest("a") is None


async def test_start_runs_startup_jobs_and_stop_ends_everything(
    store: Store, config: Config, clock: FakeClock, poller: UsagePoller, provider: FakeProvider
) -> None:
    await store.accounts.add(oauth_account(NOW - 89 * DAY))
    jobs = BackgroundJobs(store=store, config=config, clock=clock, poller=poller)
    await jobs.start()
    await until(
        lambda: bool(
            jobs.token_health and jobs.jobs["data-retention-cleanup"].runs and provider.calls
        )
    )
    await jobs.stop()
    assert [r.status for r in jobs.token_health] == [TokenHealthStatus.CRITICAL]
    assert jobs.jobs["oauth-session-cleanup"].runs == 0
    assert not any(job.started for job in jobs.jobs.values())


async def test_hourly_cleanups_run_against_the_store(
    store: Store, config: Config, clock: FakeClock, sleep: FakeSleep
) -> None:
    jobs = BackgroundJobs(store=store, config=config, clock=clock, sleep=sleep)
    await jobs.start()
    cleanups = (jobs.jobs["oauth-session-cleanup"], jobs.jobs["rate-limit-cleanup"])
    await until(lambda: all(job.runs for job in cleanups))
    await jobs.stop()
    assert [job.last_error for job in cleanups] == [None, None]
    assert [job.last_result for job in cleanups] == [0, 0]


# --------------------------------------------------------------------------- fleet leadership


async def test_a_follower_adopts_the_leaders_stored_snapshot_without_polling(
    poller: UsagePoller, provider: FakeProvider, cache: UsageCache, store: Store, clock: FakeClock
) -> None:
    poller.lead(False)
    await store.usage.record(
        UsageSnapshot(account_id="a", timestamp_ms=NOW - 30_000, windows=WINDOWS)
    )
    assert await poller.tick() == 5_000
    assert provider.calls == []
    entry = cache.entry("a")
    assert entry is not None
    assert (entry.windows, entry.fetched_at_ms) == (WINDOWS, NOW - 30_000)


async def test_a_follower_does_not_believe_a_snapshot_older_than_the_usage_ttl(
    poller: UsagePoller, cache: UsageCache, store: Store
) -> None:
    poller.lead(False)
    old = NOW - DEFAULT_USAGE_TTL_MS - 1
    await store.usage.record(UsageSnapshot(account_id="a", timestamp_ms=old, windows=WINDOWS))
    await poller.tick()
    assert cache.usage_map() == {}


async def test_a_follower_polls_an_account_itself_only_when_asked_to(
    poller: UsagePoller, provider: FakeProvider
) -> None:
    poller.lead(False)
    await poller.tick()
    assert provider.calls == []
    poller.poll_soon("a")
    await poller.tick()
    await poller.tick()
    assert provider.calls == [("a", FRESH, NOW)]


async def test_a_new_leader_carries_on_the_schedule_of_the_snapshots_it_followed(
    poller: UsagePoller, provider: FakeProvider, store: Store, clock: FakeClock
) -> None:
    poller.lead(False)
    await store.usage.record(UsageSnapshot(account_id="a", timestamp_ms=NOW, windows=WINDOWS))
    await poller.tick()
    clock.advance(10_000)
    poller.lead(True)
    await poller.tick()
    assert provider.calls == []
    due = poller.due_at_ms("a")
    assert due is not None
    assert NOW + INTERVAL * 0.8 <= due <= NOW + INTERVAL * 1.2


class ScriptedLease:
    """A lease whose answers a test scripts (the real ones are tested on PostgreSQL in the
    database package); records releases."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.released = 0

    async def hold(self) -> bool:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    async def release(self) -> None:
        self.released += 1


async def test_leadership_changes_start_and_stop_the_jobs_and_are_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    async def gained() -> None:
        calls.append("gain")

    async def lost() -> None:
        calls.append("loss")

    lease = ScriptedLease(False, True, True, True, False, False, True)
    leadership = JobLeadership(lease, on_gain=gained, on_loss=lost)
    with caplog.at_level(logging.INFO, logger="better_ccflare.proxy"):
        answers = [await leadership.check() for _ in range(7)]
    assert answers == [False, True, True, True, False, False, True]
    assert calls == ["gain", "loss", "gain"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("now runs the scheduled jobs" in m for m in messages) == 2
    assert sum("no longer runs the scheduled jobs" in m for m in messages) == 1
    await leadership.stop()
    assert calls == ["gain", "loss", "gain", "loss"]
    assert lease.released == 1


async def test_an_instance_that_cannot_ask_for_the_leadership_does_not_lead() -> None:
    class Unreachable(ScriptedLease):
        async def hold(self) -> bool:
            raise OSError("database unreachable")

    async def nothing() -> None:
        return None

    leadership = JobLeadership(Unreachable(), on_gain=nothing, on_loss=nothing)
    assert not await leadership.check()


async def test_a_lone_server_leads_its_jobs_from_the_start(
    store: Store, config: Config, clock: FakeClock, poller: UsagePoller
) -> None:
    async def reload() -> None:
        return None

    jobs = BackgroundJobs(store=store, config=config, clock=clock, poller=poller)
    jobs.add(PeriodicJob("every-instance", HOUR, reload))
    await jobs.start()
    try:
        assert jobs.leadership.leading
        assert poller.leading
        assert all(job.started for job in jobs.jobs.values())
        assert jobs.fleet_wide("data-retention-cleanup")
        assert not jobs.fleet_wide("every-instance")
    finally:
        await jobs.stop()
    assert not jobs.leadership.leading
