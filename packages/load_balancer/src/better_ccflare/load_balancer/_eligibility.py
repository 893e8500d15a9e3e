"""Which accounts a strategy may route to, and which paused ones it may lift on its own.

Every strategy filters through :func:`eligible_pool`, so "never route to an account that cannot
serve" is decided in one place.
"""

from __future__ import annotations

from collections.abc import Iterable

from better_ccflare.core import Account, PauseReason, ProviderKind

from ._peak_hours import peak_hours_end_ms
from ._selection import AccountUsage, SelectionRequest

__all__ = ["eligible_at_ms", "is_eligible", "is_usage_exhausted", "would_auto_unpause"]

PLAN_PROVIDERS = frozenset({ProviderKind.CLAUDE_OAUTH.value, ProviderKind.ZAI.value})
"""Subscription providers: they have usage windows, so sessions and auto-fallback apply."""

AUTO_UNPAUSE_GRACE_MS = 1_000
"""A window must have reset at least this long ago before its pause is lifted."""
_LIFT_DELAY_MS = AUTO_UNPAUSE_GRACE_MS + 1
"""The first moment after a reset at which :func:`would_auto_unpause` holds."""

_AUTO_LIFTED_PAUSES = frozenset({None, PauseReason.OVERAGE, PauseReason.RATE_LIMIT_WINDOW})
"""Pauses caused by a usage window, which the window's reset makes moot. A manual pause, a
failure-threshold pause and a peak-hours pause reflect a decision, so they stay."""


def is_usage_exhausted(usage: AccountUsage | None, now_ms: int) -> bool:
    """True when the usage cache says the window is used up and has not reset yet.

    Args:
        usage: The account's cached usage, or ``None`` when unknown.
        now_ms: The current time.

    Returns:
        Whether utilization is at least 100 % with a reset in the future or unknown.
    """
    if usage is None or usage.utilization is None or usage.utilization < 100:
        return False
    return usage.resets_at_ms is None or usage.resets_at_ms > now_ms


def is_eligible(account: Account, usage: AccountUsage | None, now_ms: int) -> bool:
    """True when a strategy may route a request to ``account`` right now.

    Args:
        account: The account as stored.
        usage: Its cached usage, or ``None`` when unknown.
        now_ms: The current time; a cooldown ends exactly at ``limited_until_ms``.

    Returns:
        Whether it is not paused, not awaiting re-login, not cooling down, not exhausted and
        not sitting out z.ai's peak hours.
    """
    return not account.paused and _serviceable(account, usage, now_ms)


def would_auto_unpause(account: Account, now_ms: int) -> bool:
    """True when auto-fallback may lift this account's pause because its window has reset.

    Args:
        account: The account as stored.
        now_ms: The current time.

    Returns:
        Whether it is paused for a window-related reason (or none), opted into
        auto-fallback, on a plan provider, and its rate-limit window reset over a second ago.
    """
    reset_at_ms = account.rate_limit.reset_at_ms
    return (
        account.paused
        and account.auto_fallback_enabled
        and account.provider in PLAN_PROVIDERS
        and account.pause_reason in _AUTO_LIFTED_PAUSES
        and reset_at_ms is not None
        and reset_at_ms < now_ms - AUTO_UNPAUSE_GRACE_MS
    )


def eligible_at_ms(account: Account, usage: AccountUsage | None, now_ms: int) -> int | None:
    """When a strategy may next route to ``account`` without anyone acting.

    This is what a readiness probe tells a client to wait for: the account is counted as the
    strategies count it (a window pause that auto-fallback lifts is no obstacle), and the
    usage it is judged by is what the cache knows now.

    Args:
        account: The account as stored.
        usage: Its cached usage, or ``None`` when unknown.
        now_ms: The current time.

    Returns:
        ``now_ms`` when it may serve now; else the moment its last obstacle ends (a cooldown,
        an exhausted window's reset, the reset after which auto-fallback lifts its pause, the
        end of z.ai's peak hours);
        ``None`` when a person must act (a deliberate pause, a re-login) or an obstacle has
        no known end.
    """
    if account.requires_reauth:
        return None
    ends = [now_ms]
    if account.paused:
        reset_at_ms = account.rate_limit.reset_at_ms
        if reset_at_ms is None or not would_auto_unpause(account, reset_at_ms + _LIFT_DELAY_MS):
            return None
        ends.append(reset_at_ms + _LIFT_DELAY_MS)
    limited_until_ms = account.rate_limit.limited_until_ms
    if limited_until_ms is not None and account.rate_limit.cooling_down(now_ms):
        ends.append(limited_until_ms)
    if usage is not None and is_usage_exhausted(usage, now_ms):
        if usage.resets_at_ms is None:
            return None
        ends.append(usage.resets_at_ms)
    peak_end_ms = peak_hours_end_ms(account, now_ms) if account.peak_hours_pause_enabled else None
    if peak_end_ms is not None:
        ends.append(peak_end_ms)
    return max(ends)


def eligible_pool(
    accounts: Iterable[Account], request: SelectionRequest
) -> tuple[list[Account], frozenset[str]]:
    """The accounts a strategy may order, counting those auto-fallback unpauses.

    Returns the pool in input order (an id listed twice counts once) and the ids to unpause.
    """
    pool: list[Account] = []
    seen: set[str] = set()
    unpause: set[str] = set()
    for account in accounts:
        if account.id in seen:
            continue
        seen.add(account.id)
        usage = request.usage.get(account.id)
        if is_eligible(account, usage, request.now_ms):
            pool.append(account)
        elif would_auto_unpause(account, request.now_ms) and _serviceable(
            account, usage, request.now_ms
        ):
            pool.append(account)
            unpause.add(account.id)
    return pool, frozenset(unpause)


def _serviceable(account: Account, usage: AccountUsage | None, now_ms: int) -> bool:
    """Everything in eligibility except the pause flag, which auto-fallback may lift."""
    return (
        not account.requires_reauth
        and not account.rate_limit.cooling_down(now_ms)
        and not is_usage_exhausted(usage, now_ms)
        and (not account.peak_hours_pause_enabled or peak_hours_end_ms(account, now_ms) is None)
    )
