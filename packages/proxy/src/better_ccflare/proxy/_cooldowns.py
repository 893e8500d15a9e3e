"""How one upstream response changes an account's rate-limit state.

Stale cooldowns are the most common complaint against every proxy of this kind: an account
benched for hours because of a 429 that was about one request, or a cooldown that outlives the
window it was protecting. The rules here are therefore strict:

* A cooldown always has an end time, and that end is never later than the reset the upstream
  announced (when it announced one). Nothing has to "clear" a cooldown: it ends by itself.
* Only an account-wide quota (a used-up window) benches an account until its reset.
* A 429 with no window information is about the request, not the account: no bench.
* Running out of overage credits is not a reason to bench for hours either.
* A 529 (overloaded) gets a short cooldown and never shortens a longer one.
* A response that is not rate-limited ends any cooldown at once and, after a quiet period,
  resets the backoff streak.

Everything is a pure function of its inputs, so the policy can be tested exhaustively.
"""

from __future__ import annotations

import msgspec

from better_ccflare.core import RateLimitReason, RateLimitState
from better_ccflare.providers import RateLimitInfo, RateLimitKind

__all__ = ["QUOTA_REASONS", "CooldownPolicy", "apply_rate_limit"]


QUOTA_REASONS = frozenset(
    {
        RateLimitReason.UPSTREAM_429_WITH_RESET,
        RateLimitReason.UPSTREAM_429_NO_RESET_DEFAULT_5H,
        RateLimitReason.UPSTREAM_429_NO_RESET_PROBE_COOLDOWN,
        RateLimitReason.MODEL_FALLBACK_429,
        RateLimitReason.ALL_MODELS_EXHAUSTED_429,
    }
)
"""Cooldowns that protect a used-up usage window (as opposed to an overloaded upstream)."""


class CooldownPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Tunables, in milliseconds."""

    backoff_base_ms: int = 30_000
    """First cooldown for a quota 429 whose reset is unknown; doubles with each repeat."""
    backoff_max_ms: int = 300_000
    overload_ms: int = 10_000
    overload_with_reset_max_ms: int = 60_000
    max_quota_ms: int = 8 * 24 * 3_600_000
    """No announced reset is believed beyond this (a 7-day window plus slack)."""
    streak_reset_after_ms: int = 300_000
    """Quiet time after the last rate limit before the backoff streak starts over."""


_DEFAULT_POLICY = CooldownPolicy()


def apply_rate_limit(
    state: RateLimitState,
    info: RateLimitInfo,
    now_ms: int,
    policy: CooldownPolicy | None = None,
) -> RateLimitState:
    """The account's new rate-limit state after a response classified as ``info``."""
    policy = policy or _DEFAULT_POLICY
    observed = msgspec.structs.replace(
        state,
        status=info.status if info.status is not None else state.status,
        reset_at_ms=info.reset_at_ms if info.reset_at_ms is not None else state.reset_at_ms,
        remaining=info.remaining if info.remaining is not None else state.remaining,
    )
    match info.kind:
        case RateLimitKind.NONE:
            return _served(observed, now_ms, policy)
        case RateLimitKind.ACCOUNT_QUOTA:
            return _quota(observed, info, now_ms, policy)
        case RateLimitKind.OVERLOADED:
            return _overloaded(observed, info, now_ms, policy)
        case RateLimitKind.OUT_OF_CREDITS:
            return _bench(observed, None, RateLimitReason.OUT_OF_CREDITS, now_ms, streak=False)
        case RateLimitKind.REQUEST_SCOPED:
            return _bench(observed, None, RateLimitReason.WINDOWLESS_429, now_ms, streak=False)


def _served(state: RateLimitState, now_ms: int, policy: CooldownPolicy) -> RateLimitState:
    quiet = (
        state.limited_at_ms is None or now_ms - state.limited_at_ms >= policy.streak_reset_after_ms
    )
    return msgspec.structs.replace(
        state,
        limited_until_ms=None,
        consecutive=0 if quiet else state.consecutive,
    )


def _quota(
    state: RateLimitState, info: RateLimitInfo, now_ms: int, policy: CooldownPolicy
) -> RateLimitState:
    reset = info.reset_at_ms
    if reset is not None and reset > now_ms:
        until = min(reset, now_ms + policy.max_quota_ms)
        reason = RateLimitReason.UPSTREAM_429_WITH_RESET
    else:
        streak = state.consecutive + 1
        until = now_ms + min(
            policy.backoff_base_ms * 2 ** min(streak - 1, 30), policy.backoff_max_ms
        )
        reason = RateLimitReason.UPSTREAM_429_NO_RESET_PROBE_COOLDOWN
    return _bench(state, until, reason, now_ms, streak=True)


def _overloaded(
    state: RateLimitState, info: RateLimitInfo, now_ms: int, policy: CooldownPolicy
) -> RateLimitState:
    reset = info.reset_at_ms
    if reset is not None and reset > now_ms:
        until = min(reset, now_ms + policy.overload_with_reset_max_ms)
        reason = RateLimitReason.UPSTREAM_529_OVERLOADED_WITH_RESET
    else:
        until = now_ms + policy.overload_ms
        reason = RateLimitReason.UPSTREAM_529_OVERLOADED_NO_RESET
    if state.cooling_down(now_ms) and state.limited_until_ms is not None:
        until = max(until, state.limited_until_ms)
    return msgspec.structs.replace(
        state, limited_until_ms=until, reason=reason, limited_at_ms=now_ms
    )


def _bench(
    state: RateLimitState,
    until: int | None,
    reason: RateLimitReason,
    now_ms: int,
    *,
    streak: bool,
) -> RateLimitState:
    """Record ``reason``; set the cooldown to ``until`` (``None``: leave any current one alone)."""
    return msgspec.structs.replace(
        state,
        limited_until_ms=until if until is not None else state.limited_until_ms,
        reason=reason,
        limited_at_ms=now_ms,
        consecutive=state.consecutive + 1 if streak else state.consecutive,
    )
