"""Usage polling: each account's usage endpoint read on a jittered interval.

:class:`UsagePoller` backs off on failures and feeds the
:class:`~better_ccflare.proxy.UsageCache` (which the strategies read) and the ``usage_snapshots``
table. In a fleet only the leader of the scheduled jobs polls (the upstream sees one poll per
interval, not one per instance); the other instances follow: they read the snapshots the leader
stores into their own caches. Time comes from an injected :class:`~better_ccflare.core.Clock`
and waiting goes through an injected ``sleep``, so tests run hours of schedule instantly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpx2
import msgspec

from better_ccflare.core import Account, BetterCcflareError, Clock, Credentials, UsageSnapshot
from better_ccflare.database import Store
from better_ccflare.providers import ProviderRegistry, UnknownProviderError, UsageFetchError
from better_ccflare.proxy._log_fields import account_data
from better_ccflare.proxy._usage_cache import UsageCache

from ._periodic_job import Sleep

__all__ = ["UsagePoller"]

_log = logging.getLogger("better_ccflare.proxy")


class UsagePoller:
    """Polls the usage endpoint of every account whose provider has one.

    Each account is polled every ``interval_ms`` ±``jitter`` (a fraction); new accounts start
    ``stagger_ms`` apart so a restart does not fire every request at once. After ``n``
    consecutive failures the next attempt waits ``min(interval_ms · 2**n, max_backoff_ms)``,
    unless the endpoint sent a ``retry-after``, which is obeyed as given. Paused accounts and
    accounts awaiting re-login are skipped (and polled as soon as they are usable again). A
    provider whose ``fetch_usage`` returns ``None`` has no usage endpoint and is not asked again.

    A poller starts as the leader. :meth:`lead` with ``False`` makes it a follower: each pass
    (every idle period) then reads every account's latest stored snapshot instead, and puts the
    ones it has not seen into the cache as of the time they were fetched; it polls an account
    itself only when :meth:`poll_soon` asks for it. Becoming the leader again carries on the
    leader's schedule: an account is next due an interval after the last snapshot seen of it.

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
        "_leading",
        "_max_backoff_ms",
        "_no_endpoint",
        "_providers",
        "_requested",
        "_rng",
        "_seen_ms",
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
        self._leading = True
        self._seen_ms: dict[str, int] = {}
        """When each account's latest known snapshot was fetched (by us or by the leader)."""
        self._requested: set[str] = set()
        """Accounts a follower was asked to poll itself (:meth:`poll_soon`)."""

    @property
    def leading(self) -> bool:
        """Whether this poller polls the upstream on schedule (else it follows the leader's
        stored snapshots)."""
        return self._leading

    def lead(self, leading: bool) -> None:
        """Poll on schedule (``True``), or follow the stored snapshots of another instance
        that does (``False``); takes effect at the next pass."""
        if leading and not self._leading:
            seen = self._seen_ms
            self._due_ms = {id_: seen[id_] + self._jittered_interval() for id_ in seen}
            for account_id in self._requested:
                self._due_ms[account_id] = self._clock.now_ms()
            self._requested.clear()
        self._leading = leading

    def due_at_ms(self, account_id: str) -> int | None:
        """When ``account_id`` is next polled; ``None`` when it is not scheduled."""
        return self._due_ms.get(account_id)

    def poll_soon(self, account_id: str) -> None:
        """Fetch ``account_id``'s usage at the next pass (within the idle period), e.g. after an
        operator cleared its cooldown, instead of waiting for its scheduled poll. A follower
        polls it too: an operator's request is worth the extra poll."""
        self._due_ms[account_id] = self._clock.now_ms()
        self._failures.pop(account_id, None)
        if not self._leading:
            self._requested.add(account_id)

    def failures(self, account_id: str) -> int:
        """Consecutive failed polls of ``account_id``."""
        return self._failures.get(account_id, 0)

    async def tick(self) -> int:
        """Poll every account that is due, concurrently (a follower: adopt the leader's new
        snapshots).

        Returns:
            Milliseconds until the next pass is needed (at most the idle period).
        """
        now = self._clock.now_ms()
        pool = {account.id: account for account in self._accounts()}
        for gone in (self._due_ms.keys() | self._seen_ms.keys()) - pool.keys():
            self._due_ms.pop(gone, None)
            self._seen_ms.pop(gone, None)
            self._failures.pop(gone, None)
            self._cache.forget(gone)
        if not self._leading:
            await self._follow(pool.values())
            return self._idle_ms
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
                extra={"data": account_data(account, provider=account.provider)},
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
        self._seen_ms[account.id] = now
        self._cache.update(account.id, windows, fetched_at_ms=now)
        if windows:
            snapshot = UsageSnapshot(account_id=account.id, timestamp_ms=now, windows=windows)
            try:
                await self._store.usage.record(snapshot)
            except Exception:
                _log.exception(
                    "Could not store the usage snapshot of account %s",
                    account.name,
                    extra={"data": account_data(account)},
                )

    async def _follow(self, accounts: Iterable[Account]) -> None:
        """Adopt the stored snapshots the leader fetched since the last pass; poll the
        accounts an operator asked for."""
        asked: list[Account] = []
        for account in accounts:
            if account.provider in self._no_endpoint:
                continue
            if account.id in self._requested:
                self._requested.discard(account.id)
                asked.append(account)
                continue
            snapshot = await self._store.usage.latest(account.id)
            if snapshot is None or snapshot.timestamp_ms <= self._seen_ms.get(account.id, -1):
                continue
            self._seen_ms[account.id] = snapshot.timestamp_ms
            self._cache.update(account.id, snapshot.windows, fetched_at_ms=snapshot.timestamp_ms)
        if asked:
            await asyncio.gather(*(self._poll(account) for account in asked))

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
            extra={
                "data": account_data(account, reason=reason, failures=failures, retry_in_ms=delay)
            },
        )

    def _jittered_interval(self) -> int:
        spread = self._rng.uniform(-self._jitter, self._jitter)
        return round(self._interval_ms * (1 + spread))
