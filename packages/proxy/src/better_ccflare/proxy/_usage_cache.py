"""The latest usage windows of every account, as the load balancer needs them.

The poller writes here after each successful fetch; every request reads
:meth:`UsageCache.usage_map`. Reads are therefore cheap: each account's :class:`AccountUsage` is
computed once, when its windows arrive, and the mapping handed out is rebuilt only after
something changed.

Stale usage is treated as unknown. An entry older than the TTL (a poller that keeps failing, an
account that was paused) drops out of the map, so an old "100 %" can never keep an account out of
rotation past the time anyone knew it to be true.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

import msgspec

from better_ccflare.core import Clock, UsageWindow
from better_ccflare.load_balancer import AccountUsage
from better_ccflare.providers import HARD_WINDOWS

__all__ = [
    "DEFAULT_ROLLOVER_TOLERANCE_MS",
    "DEFAULT_USAGE_TTL_MS",
    "UsageCache",
    "UsageEntry",
    "account_usage_from_windows",
    "rolled_over_windows",
]

DEFAULT_USAGE_TTL_MS = 10 * 60 * 1000
"""How long fetched usage is believed: a few poll intervals (the default interval is 90 s)."""
DEFAULT_ROLLOVER_TOLERANCE_MS = 60_000
"""A reset time that moves by less than this is jitter, not a new window (the endpoint's
``resets_at`` wobbles by fractions of a second between polls)."""

_WEEKLY_WINDOW = "seven_day"
_FULL = 100.0
"""Utilization (percent) at which an account-wide window has no room left."""

_log = logging.getLogger("better_ccflare.proxy")


def account_usage_from_windows(windows: Iterable[UsageWindow]) -> AccountUsage:
    """Reduce a provider's windows to the load balancer's view of the account.

    The representative utilization is the highest of the account-wide ("hard") windows
    (``five_hour``, ``seven_day``, ``seven_day_oauth_apps``); per-model caps are left out because
    they do not stop the account serving other models. ``resets_at_ms`` is the reset of the
    window giving that maximum (the later one on a tie, as
    :attr:`better_ccflare.providers.ClaudeUsage.representative_reset_ms` does), and
    ``weekly_resets_at_ms`` the reset of ``seven_day``. Without hard windows the usage is unknown.
    """
    hard: list[UsageWindow] = []
    weekly_reset: int | None = None
    for window in windows:
        if window.key in HARD_WINDOWS:
            hard.append(window)
        if window.key == _WEEKLY_WINDOW:
            weekly_reset = window.resets_at_ms
    if not hard:
        return AccountUsage(weekly_resets_at_ms=weekly_reset)
    top = max(window.utilization for window in hard)
    resets = [w.resets_at_ms for w in hard if w.utilization == top and w.resets_at_ms is not None]
    return AccountUsage(
        utilization=top,
        resets_at_ms=max(resets) if resets else None,
        weekly_resets_at_ms=weekly_reset,
    )


def rolled_over_windows(
    previous: Iterable[UsageWindow],
    current: Iterable[UsageWindow],
    *,
    tolerance_ms: int = DEFAULT_ROLLOVER_TOLERANCE_MS,
) -> tuple[str, ...]:
    """Keys of the hard windows whose reset moved later by more than ``tolerance_ms``.

    Such a window has started over since ``previous`` was fetched. A window without a reset
    time on either side, or absent from either side, tells nothing and is not reported.
    """
    before = {w.key: w.resets_at_ms for w in previous if w.key in HARD_WINDOWS}
    rolled: list[str] = []
    for window in current:
        old = before.get(window.key)
        new = window.resets_at_ms
        if old is not None and new is not None and new - old > tolerance_ms:
            rolled.append(window.key)
    return tuple(rolled)


class UsageEntry(msgspec.Struct, frozen=True, kw_only=True):
    """What the cache holds about one account."""

    windows: tuple[UsageWindow, ...]
    fetched_at_ms: int
    usage: AccountUsage


class UsageCache:
    """Latest usage windows per account id, with the time they were fetched.

    Args:
        clock: Source of "now" for fetch times and expiry.
        ttl_ms: Entries older than this are reported as unknown.
        rollover_tolerance_ms: See :func:`rolled_over_windows`.
        on_window_reset: Called with the account id when an update shows that one of its
            account-wide windows started over (restart the session, drop a stale cooldown).
            It must not block; exceptions it raises are logged and swallowed.
        on_headroom: Called, the same way, with the account id when an update shows every
            account-wide window under 100 %: a quota cooldown the upstream has already lifted
            can end (the reference's "capacity restored").
    """

    __slots__ = (
        "_clock",
        "_entries",
        "_fresh",
        "_on_headroom",
        "_on_window_reset",
        "_rollover_tolerance_ms",
        "_ttl_ms",
        "_view",
    )

    def __init__(
        self,
        *,
        clock: Clock,
        ttl_ms: int = DEFAULT_USAGE_TTL_MS,
        rollover_tolerance_ms: int = DEFAULT_ROLLOVER_TOLERANCE_MS,
        on_window_reset: Callable[[str], None] | None = None,
        on_headroom: Callable[[str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._rollover_tolerance_ms = rollover_tolerance_ms
        self._on_window_reset = on_window_reset
        self._on_headroom = on_headroom
        # Every account's last entry, fresh or not: rollover detection compares against it.
        self._entries: dict[str, UsageEntry] = {}
        # Fresh entries only, oldest fetch first (an update re-inserts at the end), so expiry
        # only ever pops from the front.
        self._fresh: dict[str, AccountUsage] = {}
        self._view: Mapping[str, AccountUsage] | None = None

    def update(
        self,
        account_id: str,
        windows: Iterable[UsageWindow],
        *,
        fetched_at_ms: int | None = None,
    ) -> tuple[str, ...]:
        """Store freshly fetched windows for ``account_id``, fetched now or at ``fetched_at_ms``
        (another instance's fetch, read from the store: it turns stale when that fetch does).

        Returns:
            The keys of the windows that rolled over since the previous update (empty if none);
            when there are any, ``on_window_reset`` has been called.
        """
        windows = tuple(windows)
        previous = self._entries.get(account_id)
        entry = UsageEntry(
            windows=windows,
            fetched_at_ms=self._clock.now_ms() if fetched_at_ms is None else fetched_at_ms,
            usage=account_usage_from_windows(windows),
        )
        self._entries[account_id] = entry
        self._fresh.pop(account_id, None)
        if not self._is_stale(entry.fetched_at_ms):
            # Another instance's fetch, read late, may be older than the entries before it:
            # it then outlives its time by at most that difference (a few seconds).
            self._fresh[account_id] = entry.usage
        self._view = None
        rolled = (
            rolled_over_windows(previous.windows, windows, tolerance_ms=self._rollover_tolerance_ms)
            if previous is not None
            else ()
        )
        if rolled:
            _tell(self._on_window_reset, account_id)
        utilization = entry.usage.utilization
        if utilization is not None and utilization < _FULL:
            _tell(self._on_headroom, account_id)
        return rolled

    def forget(self, account_id: str) -> None:
        """Drop everything known about ``account_id`` (it was removed from the pool)."""
        self._entries.pop(account_id, None)
        if self._fresh.pop(account_id, None) is not None:
            self._view = None

    def entry(self, account_id: str) -> UsageEntry | None:
        """The account's latest entry while it is fresh; ``None`` when unknown or stale."""
        entry = self._entries.get(account_id)
        if entry is None or self._is_stale(entry.fetched_at_ms):
            return None
        return entry

    def windows(self, account_id: str) -> tuple[UsageWindow, ...]:
        """The account's latest windows while they are fresh; empty when unknown or stale."""
        entry = self.entry(account_id)
        return entry.windows if entry is not None else ()

    def usage_map(self) -> Mapping[str, AccountUsage]:
        """Usage of every account with fresh data, by account id (read-only).

        Cheap enough for every request: it pops expired entries (oldest first) and returns a
        mapping that is rebuilt only after an update or an expiry. A returned mapping never
        changes afterwards.
        """
        self._expire()
        if self._view is None:
            self._view = MappingProxyType(dict(self._fresh))
        return self._view

    def _expire(self) -> None:
        while self._fresh:
            oldest = next(iter(self._fresh))
            if not self._is_stale(self._entries[oldest].fetched_at_ms):
                return
            del self._fresh[oldest]
            self._view = None

    def _is_stale(self, fetched_at_ms: int) -> bool:
        return self._clock.now_ms() - fetched_at_ms > self._ttl_ms


def _tell(callback: Callable[[str], None] | None, account_id: str) -> None:
    """Call an update callback; a failing one is logged, never breaks the update."""
    if callback is None:
        return
    try:
        callback(account_id)
    except Exception:
        _log.exception("A usage-update callback failed for account %s", account_id)
