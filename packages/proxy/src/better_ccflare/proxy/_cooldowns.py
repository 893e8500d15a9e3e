"""How one upstream response, or one failure to get one, changes an account's cooldown.

Stale cooldowns are the most common complaint against every proxy of this kind: an account
benched for hours because of a 429 that was about one request, or a cooldown that outlives the
window it was protecting. The rules here are therefore strict:

* A cooldown always has an end time, and that end is never later than the reset the upstream
  announced (when it announced one). Nothing has to "clear" a cooldown: it ends by itself.
* Only an account-wide quota (a used-up window) benches an account until its reset.
* A 429 with no window information is about the request, not the account: no bench.
* A 529 (overloaded) gets a short cooldown and never shortens a longer one.
* A response that is not rate-limited ends any cooldown at once and, after a quiet period,
  resets the backoff streak.

The circuit breaker adds the accounts that fail rather than answer, with a streak of its own
(:attr:`~better_ccflare.core.RateLimitState.failures`) that the next real answer resets:

* A failed connection or a first-byte timeout: 5 s, then 10, 20, 40 ... up to 5 minutes, so a
  black-holed account stops costing every request the full timeout.
* Rejected credentials (401/403 that a refresh did not cure): 10 minutes, then 20, 40, up to
  an hour. The account shows ``credentials_rejected`` until new credentials are stored (which
  ends the bench) or a probe passes; the first request routed to it after the bench is the
  probe.
* Out of credits: until the announced reset (a subscription's window brings its plan back),
  else 10 minutes doubling to an hour, each end a probe; a usage reading showing the window
  rolled over ends it early. This used to fail over without benching, which kept a drained
  account first in line: every request paid its round trip, and the last candidate's refusal
  became the client's answer. An account without credit fails every request alike, so it is
  benched like any broken account, and the probe finds out when credit is back.

Everything is a pure function of its inputs, so the policy can be tested exhaustively.
"""

from __future__ import annotations

import msgspec

from better_ccflare.core import RateLimitReason, RateLimitState
from better_ccflare.providers import RateLimitInfo, RateLimitKind

__all__ = [
    "BREAKER_REASONS",
    "QUOTA_REASONS",
    "UNREACHABLE_REASONS",
    "CooldownPolicy",
    "apply_failure",
    "apply_rate_limit",
]


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

UNREACHABLE_REASONS = frozenset({RateLimitReason.CONNECT_FAILED, RateLimitReason.UPSTREAM_TIMEOUT})
"""Failures without an answer: the short, growing cooldown."""

BREAKER_REASONS = UNREACHABLE_REASONS | {
    RateLimitReason.CREDENTIALS_REJECTED,
    RateLimitReason.OUT_OF_CREDITS,
}
"""Cooldowns the circuit breaker opens: the account failed, not the request's luck."""


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
    unreachable_base_ms: int = 5_000
    """First cooldown after a failed connection or a first-byte timeout; doubles per repeat."""
    unreachable_max_ms: int = 300_000
    probe_base_ms: int = 600_000
    """First bench for rejected credentials or no credit (without a reset); doubles per
    repeat. Its end is a probe: the next request tries the account again."""
    probe_max_ms: int = 3_600_000


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
    if info.kind is RateLimitKind.NONE:
        # The hot path: every successful response comes here.
        return _served(state, observed, now_ms, policy)
    if info.kind is RateLimitKind.OUT_OF_CREDITS:
        return _out_of_credits(observed, info, now_ms, policy)
    if observed.failures:
        observed = msgspec.structs.replace(observed, failures=0)  # it answered: the streak ends
    match info.kind:
        case RateLimitKind.ACCOUNT_QUOTA:
            return _quota(observed, info, now_ms, policy)
        case RateLimitKind.OVERLOADED:
            return _overloaded(observed, info, now_ms, policy)
        case _:
            return _bench(observed, None, RateLimitReason.WINDOWLESS_429, now_ms, streak=False)


def apply_failure(
    state: RateLimitState,
    reason: RateLimitReason,
    now_ms: int,
    policy: CooldownPolicy | None = None,
) -> RateLimitState:
    """The account's new state after an attempt that got no usable answer.

    Args:
        state: The account's state before the attempt.
        reason: :attr:`~RateLimitReason.CONNECT_FAILED`,
            :attr:`~RateLimitReason.UPSTREAM_TIMEOUT` or
            :attr:`~RateLimitReason.CREDENTIALS_REJECTED`.
        now_ms: When the attempt failed.
        policy: The tunables; the defaults when omitted.
    """
    policy = policy or _DEFAULT_POLICY
    failures = state.failures + 1
    if reason in UNREACHABLE_REASONS:
        length = _doubling(policy.unreachable_base_ms, policy.unreachable_max_ms, failures)
    else:
        length = _doubling(policy.probe_base_ms, policy.probe_max_ms, failures)
    return _open(state, now_ms + length, reason, now_ms, failures)


def _served(
    before: RateLimitState, observed: RateLimitState, now_ms: int, policy: CooldownPolicy
) -> RateLimitState:
    """A served response ends any cooldown and the breaker's streak; without either (nearly
    always) it changes only the reading, and nothing when the reading is the same."""
    quiet = (
        observed.limited_at_ms is None
        or now_ms - observed.limited_at_ms >= policy.streak_reset_after_ms
    )
    consecutive = 0 if quiet else observed.consecutive
    if (
        observed.limited_until_ms is None
        and not observed.failures
        and consecutive == observed.consecutive
    ):
        return before if observed == before else observed
    return msgspec.structs.replace(
        observed, limited_until_ms=None, consecutive=consecutive, failures=0
    )


def _out_of_credits(
    state: RateLimitState, info: RateLimitInfo, now_ms: int, policy: CooldownPolicy
) -> RateLimitState:
    failures = state.failures + 1
    reset = info.reset_at_ms
    if reset is not None and reset > now_ms:
        until = min(reset, now_ms + policy.max_quota_ms)
    else:
        until = now_ms + _doubling(policy.probe_base_ms, policy.probe_max_ms, failures)
    return _open(state, until, RateLimitReason.OUT_OF_CREDITS, now_ms, failures)


def _open(
    state: RateLimitState, until: int, reason: RateLimitReason, now_ms: int, failures: int
) -> RateLimitState:
    """Open the breaker until ``until``, never shortening a cooldown already in force."""
    if state.cooling_down(now_ms) and state.limited_until_ms is not None:
        until = max(until, state.limited_until_ms)
    return msgspec.structs.replace(
        state, limited_until_ms=until, reason=reason, limited_at_ms=now_ms, failures=failures
    )


def _doubling(base_ms: int, max_ms: int, streak: int) -> int:
    """``base_ms`` doubled for each repeat after the first, capped at ``max_ms``."""
    return min(base_ms * 2 ** min(streak - 1, 30), max_ms)


def _quota(
    state: RateLimitState, info: RateLimitInfo, now_ms: int, policy: CooldownPolicy
) -> RateLimitState:
    reset = info.reset_at_ms
    if reset is not None and reset > now_ms:
        until = min(reset, now_ms + policy.max_quota_ms)
        reason = RateLimitReason.UPSTREAM_429_WITH_RESET
    else:
        until = now_ms + _doubling(
            policy.backoff_base_ms, policy.backoff_max_ms, state.consecutive + 1
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
