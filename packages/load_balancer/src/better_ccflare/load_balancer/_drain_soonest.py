"""The ``session-drain-soonest`` strategy: spend first the quota that expires first.

Weekly quota left on an account is lost when its weekly window resets. Preferring the account
whose weekly window resets soonest uses that quota before it disappears.
"""

from __future__ import annotations

from better_ccflare.core import Account, StrategyName

from ._eligibility import AUTO_UNPAUSE_GRACE_MS, PLAN_PROVIDERS
from ._ranking import PreferenceKey, preference_key
from ._selection import SelectionRequest
from ._session import SessionWindowStrategy, active_session

__all__ = ["SessionDrainSoonestStrategy"]

_UNKNOWN_RESET = 2**63
"""Later than any real epoch-millisecond time."""


class SessionDrainSoonestStrategy(SessionWindowStrategy):
    """Session semantics, but an open session is never preempted by priority.

    A fresh pick takes the earliest future weekly reset (unknown last), then priority, then
    utilization. Because priority never preempts, an auto-fallback account whose window has
    reset is the only way back to a preferred account: it leads even over an open session.
    Stateless, like ``session``.
    """

    __slots__ = ()

    name = StrategyName.SESSION_DRAIN_SOONEST
    summary = (
        "Like session, but a fresh pick takes the account whose weekly window resets soonest, "
        "to spend quota before it expires; priority never interrupts an open session."
    )

    def _rank(self, pool: list[Account], request: SelectionRequest) -> list[Account]:
        return sorted(pool, key=lambda account: _drain_key(account, request))

    def _lead(
        self, pool: list[Account], ranked: list[Account], request: SelectionRequest
    ) -> tuple[Account, str]:
        fallbacks = [account for account in pool if _is_fallback(account, request.now_ms)]
        if fallbacks:
            back = min(fallbacks, key=lambda account: preference_key(account, request.usage))
            return back, f"auto-fallback to {back.name}"
        active = active_session(pool, request)
        if active is not None:
            return active, f"continuing session on {active.name}"
        return ranked[0], f"new session on {ranked[0].name} (weekly reset soonest)"


def _drain_key(account: Account, request: SelectionRequest) -> tuple[int, PreferenceKey]:
    """Earliest future weekly reset first; an unknown or past reset sorts after every known one."""
    usage = request.usage.get(account.id)
    weekly_reset_ms = None if usage is None else usage.weekly_resets_at_ms
    if weekly_reset_ms is None or weekly_reset_ms <= request.now_ms:
        weekly_reset_ms = _UNKNOWN_RESET
    return weekly_reset_ms, preference_key(account, request.usage)


def _is_fallback(account: Account, now_ms: int) -> bool:
    """An opted-in plan account, already known eligible, whose window reset a while ago."""
    reset_at_ms = account.rate_limit.reset_at_ms
    return (
        account.auto_fallback_enabled
        and account.provider in PLAN_PROVIDERS
        and reset_at_ms is not None
        and reset_at_ms < now_ms - AUTO_UNPAUSE_GRACE_MS
    )
