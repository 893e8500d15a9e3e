"""What each account, and the pool, can serve now, and when that changes.

One reading serves three readers: the reply when no account can serve (``_unavailable``),
holding a request until an account frees up (``_hold``), and ``GET /api/capacity``. Each
account gets its usage windows (what the usage poller last read), whether it can serve now, why
not, and when it will without anyone acting; the pool gets the same, summed up.

The distinction that matters to clients is *why* nothing can serve. When every account in
rotation (neither paused nor awaiting a re-login: those wait for a person, so they change
nothing) is out because a usage window is used up, the pool is out the way a subscription at
its limit is, and the client should be told so in Anthropic's words. Anything else (an
overload, a dead connection, a refused credential) is transient or broken, not a limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum

import msgspec

from better_ccflare.core import Account, RateLimitReason, RateLimitState, UsageWindow
from better_ccflare.load_balancer import AccountUsage, eligible_at_ms, is_usage_exhausted
from better_ccflare.providers import HARD_STATUSES, HARD_WINDOWS

from ._cooldowns import QUOTA_REASONS, UNREACHABLE_REASONS

__all__ = [
    "AccountCapacity",
    "PoolCapacity",
    "PoolWindow",
    "UnavailableReason",
    "WindowCapacity",
    "account_capacity",
    "capacities",
    "pool_capacity",
]

_FULL = 100.0


class UnavailableReason(StrEnum):
    """Why one account cannot serve, in the order they take precedence."""

    REQUIRES_REAUTH = "requires_reauth"
    PAUSED = "paused"
    USAGE_EXHAUSTED = "usage_exhausted"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    CREDENTIALS_REJECTED = "credentials_rejected"
    OUT_OF_CREDITS = "out_of_credits"
    UNREACHABLE = "unreachable"
    """Failed connections or timeouts: the circuit breaker's short cooldown."""
    UNAVAILABLE = "unavailable"


_WINDOW_REASONS = frozenset({UnavailableReason.USAGE_EXHAUSTED, UnavailableReason.RATE_LIMITED})
_OUT_OF_ROTATION = frozenset({UnavailableReason.REQUIRES_REAUTH, UnavailableReason.PAUSED})


class WindowCapacity(msgspec.Struct, frozen=True, kw_only=True):
    """One usage window of one account."""

    key: str
    """``five_hour``, ``seven_day``, ``seven_day_opus``, ... as the provider names it."""
    utilization: float
    """Percent used, 0 to 100 (above with overage)."""
    resets_at_ms: int | None
    exhausted: bool
    """At 100 % or more and not reset yet."""


class AccountCapacity(msgspec.Struct, frozen=True, kw_only=True):
    """One account: whether it can serve now, and if not, why and until when."""

    id: str
    name: str
    provider: str
    reason: UnavailableReason | None
    """``None`` when it can serve now."""
    available_at_ms: int | None
    """When it can serve without anyone acting (now, when it can); ``None`` when a person must
    act or an obstacle has no known end."""
    windows: tuple[WindowCapacity, ...]
    limiting_window: str | None
    """The used-up account-wide window it waits for (the one resetting last), when the usage
    poll knows it: Claude Code's ``representative-claim``."""

    @property
    def can_serve(self) -> bool:
        return self.reason is None

    @property
    def in_rotation(self) -> bool:
        """Not paused, not awaiting a re-login: an account the pool counts on."""
        return self.reason not in _OUT_OF_ROTATION

    @property
    def window_limited(self) -> bool:
        """Out because a usage window is used up (the upstream said so, or the poll did)."""
        return self.reason in _WINDOW_REASONS


def account_capacity(
    account: Account, usage: AccountUsage | None, windows: Iterable[UsageWindow], now_ms: int
) -> AccountCapacity:
    """Read one account's capacity.

    Args:
        account: The account as the pool holds it.
        usage: Its usage as the strategies see it (``None`` when unknown or stale).
        windows: Its usage windows as last polled (empty when unknown or stale).
        now_ms: The current time.
    """
    shown = tuple(
        WindowCapacity(
            key=w.key,
            utilization=w.utilization,
            resets_at_ms=w.resets_at_ms,
            exhausted=_used_up(w, now_ms),
        )
        for w in windows
    )
    available_at = eligible_at_ms(account, usage, now_ms)
    reason = None if available_at == now_ms else _reason(account, usage, now_ms)
    used_up = [w for w in shown if w.exhausted and w.key in HARD_WINDOWS]
    limiting = max(used_up, key=lambda w: w.resets_at_ms or now_ms).key if used_up else None
    return AccountCapacity(
        id=account.id,
        name=account.name,
        provider=account.provider,
        reason=reason,
        available_at_ms=available_at,
        windows=shown,
        limiting_window=limiting if reason is not None else None,
    )


class PoolWindow(msgspec.Struct, frozen=True, kw_only=True):
    """One window across the accounts in rotation that report it."""

    key: str
    utilization: float
    """The mean of the accounts' utilization: how much of the pool's window is used."""
    resets_at_ms: int | None
    """The soonest reset among them."""
    accounts: int
    """How many accounts report it."""
    exhausted: int
    """How many of them have it used up."""


class PoolCapacity(msgspec.Struct, frozen=True, kw_only=True):
    """The pool as a whole."""

    can_serve: bool
    """Some account can serve now."""
    available_at_ms: int | None
    """When the first account can serve (now, when one can); ``None`` when unknown."""
    windows_exhausted: bool
    """Nothing can serve, and only because usage windows are used up: every account in
    rotation is out on a window (there is at least one)."""
    windows: tuple[PoolWindow, ...]


def pool_capacity(accounts: Sequence[AccountCapacity]) -> PoolCapacity:
    """Sum up the accounts' capacities."""
    can_serve = any(a.can_serve for a in accounts)
    known = [a.available_at_ms for a in accounts if a.available_at_ms is not None]
    in_rotation = [a for a in accounts if a.in_rotation]
    by_key: dict[str, list[WindowCapacity]] = {}
    for account in in_rotation:
        for window in account.windows:
            by_key.setdefault(window.key, []).append(window)
    return PoolCapacity(
        can_serve=can_serve,
        available_at_ms=min(known) if known else None,
        windows_exhausted=(
            not can_serve and bool(in_rotation) and all(a.window_limited for a in in_rotation)
        ),
        windows=tuple(_pool_window(key, ws) for key, ws in by_key.items()),
    )


def capacities(
    accounts: Iterable[Account],
    usage: Mapping[str, AccountUsage],
    windows: Callable[[str], tuple[UsageWindow, ...]],
    now_ms: int,
) -> list[AccountCapacity]:
    """The capacity of each of ``accounts``, in their order.

    Args:
        accounts: The accounts.
        usage: Their usage as the strategies see it, by account id.
        windows: An account's usage windows, by its id (``UsageCache.windows``).
        now_ms: The current time.
    """
    return [account_capacity(a, usage.get(a.id), windows(a.id), now_ms) for a in accounts]


def _pool_window(key: str, windows: Sequence[WindowCapacity]) -> PoolWindow:
    resets = [w.resets_at_ms for w in windows if w.resets_at_ms is not None]
    return PoolWindow(
        key=key,
        utilization=round(sum(w.utilization for w in windows) / len(windows), 2),
        resets_at_ms=min(resets) if resets else None,
        accounts=len(windows),
        exhausted=sum(w.exhausted for w in windows),
    )


def _used_up(window: UsageWindow, now_ms: int) -> bool:
    return window.utilization >= _FULL and (
        window.resets_at_ms is None or window.resets_at_ms > now_ms
    )


def _reason(account: Account, usage: AccountUsage | None, now_ms: int) -> UnavailableReason:
    if account.requires_reauth:
        return UnavailableReason.REQUIRES_REAUTH
    if account.paused:
        return UnavailableReason.PAUSED
    if is_usage_exhausted(usage, now_ms):
        return UnavailableReason.USAGE_EXHAUSTED
    if account.rate_limit.cooling_down(now_ms):
        return _cooldown_reason(account.rate_limit)
    return UnavailableReason.UNAVAILABLE


def _cooldown_reason(limit: RateLimitState) -> UnavailableReason:
    reason = limit.reason
    if reason is None or reason in QUOTA_REASONS:
        return UnavailableReason.RATE_LIMITED
    if reason is RateLimitReason.CREDENTIALS_REJECTED:
        return UnavailableReason.CREDENTIALS_REJECTED
    if reason is RateLimitReason.OUT_OF_CREDITS:
        # A subscription at its limit with no extra usage left: Anthropic answers 429 with
        # ``unified-status: rejected`` and ``overage-disabled-reason: out_of_credits``. The
        # window is what is used up; the bench ends at its reset. Without that status (a
        # console key's empty balance) it is a lack of credit, which no window ends.
        if limit.status in HARD_STATUSES:
            return UnavailableReason.RATE_LIMITED
        return UnavailableReason.OUT_OF_CREDITS
    if reason in UNREACHABLE_REASONS:
        return UnavailableReason.UNREACHABLE
    return UnavailableReason.OVERLOADED
