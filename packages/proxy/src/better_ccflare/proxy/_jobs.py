"""Background work: usage polling and the periodic maintenance jobs.

* :class:`UsagePoller` reads each account's usage endpoint on a jittered interval, backs off on
  failures, and feeds the :class:`~._usage_cache.UsageCache` and the ``usage_snapshots`` table.
* :class:`PeriodicJob` runs one coroutine function on a fixed delay; it never overlaps itself and
  survives the function raising.
* :class:`BackgroundJobs` owns the poller and the maintenance jobs (retention, expired OAuth
  sessions, expired cooldowns, token health) so the server's lifespan starts and stops them
  together.

Time comes from an injected :class:`~better_ccflare.core.Clock` and waiting goes through an
injected ``sleep``, so tests run hours of schedule instantly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum

import httpx2
import msgspec

from better_ccflare.core import (
    Account,
    BetterCcflareError,
    Clock,
    Config,
    Credentials,
    UsageSnapshot,
)
from better_ccflare.database import RetentionResult, Store
from better_ccflare.providers import ProviderRegistry, UnknownProviderError, UsageFetchError

from ._usage_cache import UsageCache

__all__ = [
    "BackgroundJobs",
    "PeriodicJob",
    "Sleep",
    "TokenHealthPolicy",
    "TokenHealthReport",
    "TokenHealthStatus",
    "UsagePoller",
    "check_token_health",
    "token_health",
]

Sleep = Callable[[float], Awaitable[None]]
"""Waits the given number of seconds (``asyncio.sleep``; tests advance a fake clock instead)."""

_log = logging.getLogger("better_ccflare.proxy")

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


# --------------------------------------------------------------------------- usage polling


class UsagePoller:
    """Polls the usage endpoint of every account whose provider has one.

    Each account is polled every ``interval_ms`` ±``jitter`` (a fraction); new accounts start
    ``stagger_ms`` apart so a restart does not fire every request at once. After ``n``
    consecutive failures the next attempt waits ``min(interval_ms · 2**n, max_backoff_ms)``,
    unless the endpoint sent a ``retry-after``, which is obeyed as given. Paused accounts and
    accounts awaiting re-login are skipped (and polled as soon as they are usable again). A
    provider whose ``fetch_usage`` returns ``None`` has no usage endpoint and is not asked again.

    Args:
        accounts: The current pool, read on every pass (accounts may come and go).
        providers: Resolves ``Account.provider`` to its provider.
        credentials_for: Fresh credentials for an account (the token manager).
        cache: Where successful fetches go.
        store: ``store.usage`` records a snapshot of each successful fetch.
        client: The HTTP client the providers fetch with.
        clock: Source of "now".
        interval_ms: The configured poll interval (``Config.usage_poll_interval_ms``).
        sleep: How to wait; ``asyncio.sleep`` by default.
        rng: Source of the jitter; a fresh ``random.Random`` by default.
    """

    __slots__ = (
        "_accounts",
        "_cache",
        "_client",
        "_clock",
        "_credentials_for",
        "_due_ms",
        "_failures",
        "_idle_ms",
        "_interval_ms",
        "_jitter",
        "_max_backoff_ms",
        "_no_endpoint",
        "_providers",
        "_rng",
        "_sleep",
        "_stagger_ms",
        "_store",
        "_task",
    )

    def __init__(
        self,
        *,
        accounts: Callable[[], Sequence[Account]],
        providers: ProviderRegistry,
        credentials_for: Callable[[Account], Awaitable[Credentials]],
        cache: UsageCache,
        store: Store,
        client: httpx2.AsyncClient,
        clock: Clock,
        interval_ms: int,
        jitter: float = 0.2,
        stagger_ms: int = 5_000,
        max_backoff_ms: int = 30 * 60_000,
        idle_ms: int = 5_000,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._accounts = accounts
        self._providers = providers
        self._credentials_for = credentials_for
        self._cache = cache
        self._store = store
        self._client = client
        self._clock = clock
        self._interval_ms = interval_ms
        self._jitter = jitter
        self._stagger_ms = stagger_ms
        self._max_backoff_ms = max_backoff_ms
        self._idle_ms = idle_ms
        """The longest the loop sleeps, so new and re-enabled accounts are noticed."""
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._due_ms: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._no_endpoint: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def due_at_ms(self, account_id: str) -> int | None:
        """When ``account_id`` is next polled; ``None`` when it is not scheduled."""
        return self._due_ms.get(account_id)

    def poll_soon(self, account_id: str) -> None:
        """Fetch ``account_id``'s usage at the next pass (within the idle period), e.g. after an
        operator cleared its cooldown, instead of waiting for its scheduled poll."""
        self._due_ms[account_id] = self._clock.now_ms()
        self._failures.pop(account_id, None)

    def failures(self, account_id: str) -> int:
        """Consecutive failed polls of ``account_id``."""
        return self._failures.get(account_id, 0)

    async def tick(self) -> int:
        """Poll every account that is due, concurrently.

        Returns:
            Milliseconds until the next pass is needed (at most the idle period).
        """
        now = self._clock.now_ms()
        pool = {account.id: account for account in self._accounts()}
        for gone in self._due_ms.keys() - pool.keys():
            del self._due_ms[gone]
            self._failures.pop(gone, None)
            self._cache.forget(gone)
        newcomers = 0
        due: list[Account] = []
        for account in pool.values():
            if account.provider in self._no_endpoint:
                self._due_ms.pop(account.id, None)
                continue
            if account.id not in self._due_ms:
                self._due_ms[account.id] = now + newcomers * self._stagger_ms
                newcomers += 1
            if account.paused or account.requires_reauth:
                continue
            if self._due_ms[account.id] <= now:
                due.append(account)
        if due:
            await asyncio.gather(*(self._poll(account) for account in due))
        now = self._clock.now_ms()
        waits = [
            self._due_ms[account.id] - now
            for account in pool.values()
            if account.id in self._due_ms and not (account.paused or account.requires_reauth)
        ]
        return max(0, min([self._idle_ms, *waits]))

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            try:
                delay_ms = await self.tick()
            except Exception:
                # The pool callable or the cache misbehaving must not end polling for good.
                _log.exception("Usage polling pass failed")
                delay_ms = self._idle_ms
            await self._sleep(delay_ms / 1000)

    def start(self) -> None:
        """Start polling in a background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="usage-poller")

    async def stop(self) -> None:
        """Stop polling and wait for the task to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self, account: Account) -> None:
        now = self._clock.now_ms()
        try:
            provider = self._providers.get(account.provider)
        except UnknownProviderError:
            _log.warning(
                "Not polling usage of account %s: no provider %r is registered",
                account.name,
                account.provider,
            )
            self._no_endpoint.add(account.provider)
            self._due_ms.pop(account.id, None)
            return
        try:
            credentials = await self._credentials_for(account)
            windows = await provider.fetch_usage(
                msgspec.structs.replace(account, credentials=credentials), self._client, now
            )
        except UsageFetchError as exc:
            self._failed(account, str(exc), exc.retry_after_ms)
            return
        except BetterCcflareError as exc:
            self._failed(account, str(exc), None)
            return
        except Exception as exc:
            # Third-party providers may raise anything; the message could echo a request, so
            # only the type is logged.
            self._failed(account, type(exc).__name__, None)
            return
        if windows is None:
            _log.debug("Provider %s has no usage endpoint; not polling it", provider.id)
            self._no_endpoint.add(account.provider)
            self._due_ms.pop(account.id, None)
            return
        self._failures.pop(account.id, None)
        self._due_ms[account.id] = self._clock.now_ms() + self._jittered_interval()
        self._cache.update(account.id, windows)
        if windows:
            snapshot = UsageSnapshot(account_id=account.id, timestamp_ms=now, windows=windows)
            try:
                await self._store.usage.record(snapshot)
            except Exception:
                _log.exception("Could not store the usage snapshot of account %s", account.name)

    def _failed(self, account: Account, reason: str, retry_after_ms: int | None) -> None:
        failures = self._failures.get(account.id, 0) + 1
        self._failures[account.id] = failures
        if retry_after_ms is not None:
            delay = max(0, retry_after_ms)
        else:
            delay = min(self._interval_ms * 2**failures, self._max_backoff_ms)
        self._due_ms[account.id] = self._clock.now_ms() + delay
        _log.warning(
            "Usage poll of account %s failed (%d in a row), next try in %d s: %s",
            account.name,
            failures,
            delay // 1000,
            reason,
        )

    def _jittered_interval(self) -> int:
        spread = self._rng.uniform(-self._jitter, self._jitter)
        return round(self._interval_ms * (1 + spread))


# --------------------------------------------------------------------------- periodic jobs


class PeriodicJob:
    """Runs ``fn`` every ``interval_ms`` (measured from the end of one run to the next start).

    A run that raises is logged and the schedule goes on. Runs never overlap: the loop waits
    for each run, and :meth:`run_now` skips while one is in progress.

    Args:
        name: For logs and status.
        interval_ms: Pause between runs.
        fn: The work; its return value is kept in :attr:`last_result`.
        run_at_start: Run once as soon as the job starts instead of after the first interval.
        sleep: How to wait; ``asyncio.sleep`` by default.
    """

    __slots__ = (
        "_fn",
        "_running",
        "_sleep",
        "_task",
        "interval_ms",
        "last_error",
        "last_result",
        "name",
        "run_at_start",
        "runs",
    )

    def __init__(
        self,
        name: str,
        interval_ms: int,
        fn: Callable[[], Awaitable[object]],
        *,
        run_at_start: bool = False,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self.interval_ms = interval_ms
        self.run_at_start = run_at_start
        self._fn = fn
        self._sleep = sleep
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        """Completed runs, successful or not."""
        self.last_result: object = None
        self.last_error: str | None = None
        """``"ExceptionType: message"`` of the last run if it failed, else ``None``."""

    @property
    def running(self) -> bool:
        """True while a run is in progress."""
        return self._running

    @property
    def started(self) -> bool:
        """True while the schedule is active."""
        return self._task is not None and not self._task.done()

    async def run_now(self) -> bool:
        """Run once now, unless a run is already in progress.

        Returns:
            ``False`` when the run was skipped because another one was in progress.
        """
        if self._running:
            _log.debug("Job %s is still running; skipping this run", self.name)
            return False
        self._running = True
        try:
            self.last_result = await self._fn()
            self.last_error = None
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            _log.exception("Background job %s failed", self.name)
        finally:
            self._running = False
            self.runs += 1
        return True

    def start(self) -> None:
        """Start the schedule in a background task (idempotent)."""
        if not self.started:
            self._task = asyncio.create_task(self._loop(), name=f"job-{self.name}")

    async def stop(self) -> None:
        """Stop the schedule, cancelling a run in progress, and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        if self.run_at_start:
            await self.run_now()
        while True:
            await self._sleep(self.interval_ms / 1000)
            await self.run_now()


# --------------------------------------------------------------------------- token health


class TokenHealthStatus(StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"
    EXPIRED = "expired"
    NO_REFRESH_TOKEN = "no-refresh-token"  # noqa: S105 (a status name, not a secret)
    """An API-key account: nothing ages."""


class TokenHealthPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Age limits of an OAuth refresh token, in milliseconds."""

    max_age_ms: int = 90 * _DAY_MS
    critical_left_ms: int = 3 * _DAY_MS
    warning_left_ms: int = 7 * _DAY_MS
    warning_age_ms: int = 60 * _DAY_MS
    """A token older than this is a warning however long the maximum age leaves."""


class TokenHealthReport(msgspec.Struct, frozen=True, kw_only=True):
    """How close one account's refresh token is to its assumed maximum age. No secrets."""

    account_id: str
    account_name: str
    provider: str
    status: TokenHealthStatus
    requires_reauth: bool
    issued_at_ms: int | None = None
    """``refresh_token_issued_at_ms``, else the account's creation; ``None`` without a token."""
    expires_at_ms: int | None = None
    """``issued_at_ms`` plus the maximum age."""
    remaining_ms: int | None = None
    """Time left until ``expires_at_ms`` (negative once past)."""


_DEFAULT_TOKEN_POLICY = TokenHealthPolicy()


def token_health(
    account: Account, now_ms: int, policy: TokenHealthPolicy | None = None
) -> TokenHealthReport:
    """Classify ``account``'s refresh token by age alone (no network).

    Age is measured from ``refresh_token_issued_at_ms``, falling back to ``created_at_ms``. With
    the default policy a token is expired at 90 days, critical with 3 days or less left, a
    warning with 7 days or less left or when older than 60 days, and healthy otherwise.
    """
    policy = policy or _DEFAULT_TOKEN_POLICY
    base = TokenHealthReport(
        account_id=account.id,
        account_name=account.name,
        provider=account.provider,
        status=TokenHealthStatus.NO_REFRESH_TOKEN,
        requires_reauth=account.requires_reauth,
    )
    if account.credentials.refresh_token is None:
        return base
    issued = account.credentials.refresh_token_issued_at_ms or account.created_at_ms
    expires = issued + policy.max_age_ms
    remaining = expires - now_ms
    if remaining <= 0:
        status = TokenHealthStatus.EXPIRED
    elif remaining <= policy.critical_left_ms:
        status = TokenHealthStatus.CRITICAL
    elif remaining <= policy.warning_left_ms or now_ms - issued > policy.warning_age_ms:
        status = TokenHealthStatus.WARNING
    else:
        status = TokenHealthStatus.HEALTHY
    return msgspec.structs.replace(
        base, status=status, issued_at_ms=issued, expires_at_ms=expires, remaining_ms=remaining
    )


def check_token_health(
    accounts: Sequence[Account], now_ms: int, policy: TokenHealthPolicy | None = None
) -> list[TokenHealthReport]:
    """:func:`token_health` of every account, logging the ones that need attention."""
    reports = [token_health(account, now_ms, policy) for account in accounts]
    for report in reports:
        if report.requires_reauth:
            _log.warning(
                "Account %s (%s) needs re-authentication before it can be used again",
                report.account_name,
                report.account_id,
            )
        elif report.status in (
            TokenHealthStatus.WARNING,
            TokenHealthStatus.CRITICAL,
            TokenHealthStatus.EXPIRED,
        ):
            days_left = (report.remaining_ms or 0) / _DAY_MS
            _log.warning(
                "Account %s (%s): refresh token health is %s (%.1f days left of its assumed "
                "maximum age); re-authenticate the account soon",
                report.account_name,
                report.account_id,
                report.status,
                days_left,
            )
    return reports


# --------------------------------------------------------------------------- all together


class BackgroundJobs:
    """The poller and the maintenance jobs, started and stopped together.

    Jobs (from the reference's interval manager):

    * ``data-retention-cleanup``, hourly and at start: :meth:`Store.run_retention` with the
      configured ``data_retention_days`` and ``request_retention_days``;
    * ``oauth-session-cleanup``, hourly: delete expired pending logins;
    * ``rate-limit-cleanup``, hourly: end cooldowns whose time has passed;
    * ``token-health``, every 6 hours and at start: :func:`check_token_health` over the stored
      accounts; the latest reports are in :attr:`token_health`.

    Args:
        store: The open store.
        config: Supplies the retention settings.
        clock: Source of "now".
        poller: Started and stopped with the jobs, when given.
        sleep: How the jobs wait; ``asyncio.sleep`` by default.
    """

    __slots__ = ("_clock", "_config", "_store", "jobs", "poller", "token_health")

    def __init__(
        self,
        *,
        store: Store,
        config: Config,
        clock: Clock,
        poller: UsagePoller | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self.poller = poller
        self.token_health: tuple[TokenHealthReport, ...] = ()
        self.jobs: dict[str, PeriodicJob] = {
            job.name: job
            for job in (
                PeriodicJob(
                    "data-retention-cleanup",
                    _HOUR_MS,
                    self.run_retention,
                    run_at_start=True,
                    sleep=sleep,
                ),
                PeriodicJob("oauth-session-cleanup", _HOUR_MS, self._clean_oauth, sleep=sleep),
                PeriodicJob("rate-limit-cleanup", _HOUR_MS, self._clean_rate_limits, sleep=sleep),
                PeriodicJob(
                    "token-health",
                    6 * _HOUR_MS,
                    self.check_token_health,
                    run_at_start=True,
                    sleep=sleep,
                ),
            )
        }

    def use_config(self, config: Config) -> None:
        """Take retention settings from ``config`` from the next run on (a live settings
        change)."""
        self._config = config

    async def start(self) -> None:
        """Start every job and the poller; runs scheduled "at start" begin in the background."""
        for job in self.jobs.values():
            job.start()
        if self.poller is not None:
            self.poller.start()

    async def stop(self) -> None:
        """Stop the poller and every job, and wait for them to end."""
        if self.poller is not None:
            await self.poller.stop()
        await asyncio.gather(*(job.stop() for job in self.jobs.values()))

    async def run_retention(self) -> RetentionResult:
        """Delete history past the configured retention (also the manual cleanup action)."""
        result = await self._store.run_retention(
            self._config.data_retention_days,
            self._config.request_retention_days,
            now_ms=self._clock.now_ms(),
        )
        _log.info("Retention cleanup: %s", result)
        return result

    async def check_token_health(self) -> tuple[TokenHealthReport, ...]:
        """Classify every stored account's refresh token and keep the reports."""
        accounts = await self._store.accounts.list_all()
        self.token_health = tuple(check_token_health(accounts, self._clock.now_ms()))
        return self.token_health

    async def _clean_oauth(self) -> int:
        return await self._store.oauth_sessions.delete_expired(self._clock.now_ms())

    async def _clean_rate_limits(self) -> int:
        return await self._store.accounts.clear_expired_rate_limits(self._clock.now_ms())
