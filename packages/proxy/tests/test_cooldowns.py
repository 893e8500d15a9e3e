"""The cooldown policy: no stale cooldowns, no benching for request-scoped limits, and the
circuit breaker's growing benches for accounts that fail (timeouts, dead connections, rejected
credentials, no credit)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.core import RateLimitReason, RateLimitState
from better_ccflare.providers import RateLimitInfo, RateLimitKind
from better_ccflare.proxy._cooldowns import CooldownPolicy, apply_failure, apply_rate_limit

NOW = 1_800_000_000_000
POLICY = CooldownPolicy()

times = st.integers(min_value=NOW - 10**10, max_value=NOW + 10**10)
states = st.builds(
    RateLimitState,
    status=st.none() | st.sampled_from(["allowed", "rate_limited"]),
    reset_at_ms=st.none() | times,
    remaining=st.none() | st.integers(min_value=0, max_value=1000),
    limited_until_ms=st.none() | times,
    reason=st.none() | st.sampled_from(RateLimitReason),
    limited_at_ms=st.none() | times,
    consecutive=st.integers(min_value=0, max_value=40),
)
infos = st.builds(
    RateLimitInfo,
    kind=st.sampled_from(RateLimitKind),
    status=st.none() | st.sampled_from(["rate_limited", "allowed_warning"]),
    reset_at_ms=st.none() | times,
    remaining=st.none() | st.integers(min_value=0, max_value=1000),
)


def test_quota_with_reset_benches_until_exactly_the_reset() -> None:
    info = RateLimitInfo(kind=RateLimitKind.ACCOUNT_QUOTA, reset_at_ms=NOW + 3_600_000)
    state = apply_rate_limit(RateLimitState(), info, NOW)
    assert state.limited_until_ms == NOW + 3_600_000
    assert state.reason is RateLimitReason.UPSTREAM_429_WITH_RESET
    assert state.cooling_down(NOW + 3_599_999)
    assert not state.cooling_down(NOW + 3_600_000)


def test_quota_without_reset_backs_off_exponentially_to_a_cap() -> None:
    info = RateLimitInfo(kind=RateLimitKind.ACCOUNT_QUOTA)
    state = RateLimitState()
    lengths: list[int] = []
    for _ in range(6):
        state = apply_rate_limit(state, info, NOW)
        assert state.limited_until_ms is not None
        lengths.append(state.limited_until_ms - NOW)
    assert lengths == [30_000, 60_000, 120_000, 240_000, 300_000, 300_000]


def test_request_scoped_429_does_not_bench() -> None:
    info = RateLimitInfo(kind=RateLimitKind.REQUEST_SCOPED)
    state = apply_rate_limit(RateLimitState(), info, NOW)
    assert state.limited_until_ms is None
    assert state.reason is RateLimitReason.WINDOWLESS_429
    assert state.consecutive == 0


def test_out_of_credits_benches_until_the_announced_reset() -> None:
    info = RateLimitInfo(kind=RateLimitKind.OUT_OF_CREDITS, reset_at_ms=NOW + 86_400_000)
    state = apply_rate_limit(RateLimitState(), info, NOW)
    assert state.limited_until_ms == NOW + 86_400_000
    assert (state.reason, state.failures) == (RateLimitReason.OUT_OF_CREDITS, 1)


def test_out_of_credits_without_a_reset_is_probed_after_a_growing_while() -> None:
    info = RateLimitInfo(kind=RateLimitKind.OUT_OF_CREDITS)
    state = RateLimitState()
    lengths: list[int] = []
    for _ in range(5):
        state = apply_rate_limit(state, info, NOW)
        assert state.limited_until_ms is not None
        lengths.append(state.limited_until_ms - NOW)
    assert lengths == [600_000, 1_200_000, 2_400_000, 3_600_000, 3_600_000]


def test_connect_failures_and_timeouts_open_a_growing_short_cooldown() -> None:
    state = RateLimitState()
    lengths: list[int] = []
    for reason in [RateLimitReason.CONNECT_FAILED, RateLimitReason.UPSTREAM_TIMEOUT] * 4:
        state = apply_failure(state, reason, NOW)
        assert state.limited_until_ms is not None
        lengths.append(state.limited_until_ms - NOW)
    assert lengths == [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]
    assert (state.reason, state.failures) == (RateLimitReason.UPSTREAM_TIMEOUT, 8)


def test_rejected_credentials_are_probed_after_ten_minutes_then_less_often() -> None:
    first = apply_failure(RateLimitState(), RateLimitReason.CREDENTIALS_REJECTED, NOW)
    second = apply_failure(first, RateLimitReason.CREDENTIALS_REJECTED, NOW)
    assert first.limited_until_ms == NOW + 600_000
    assert second.limited_until_ms == NOW + 1_200_000
    assert second.reason is RateLimitReason.CREDENTIALS_REJECTED


def test_a_failure_never_shortens_a_longer_cooldown() -> None:
    quota = RateLimitState(
        limited_until_ms=NOW + 3_600_000, reason=RateLimitReason.UPSTREAM_429_WITH_RESET
    )
    state = apply_failure(quota, RateLimitReason.CONNECT_FAILED, NOW)
    assert state.limited_until_ms == NOW + 3_600_000


@pytest.mark.parametrize(
    "kind",
    [
        RateLimitKind.NONE,
        RateLimitKind.ACCOUNT_QUOTA,
        RateLimitKind.OVERLOADED,
        RateLimitKind.REQUEST_SCOPED,
    ],
)
def test_any_answer_but_out_of_credits_resets_the_failure_streak(kind: RateLimitKind) -> None:
    failing = apply_failure(RateLimitState(), RateLimitReason.CONNECT_FAILED, NOW)
    state = apply_rate_limit(failing, RateLimitInfo(kind=kind), NOW + 1)
    assert state.failures == 0


def test_a_success_with_nothing_to_reset_leaves_the_state_as_it_is() -> None:
    state = RateLimitState(status="allowed", remaining=10, reason=RateLimitReason.WINDOWLESS_429)
    ok = RateLimitInfo(kind=RateLimitKind.NONE, status="allowed", remaining=10)
    assert apply_rate_limit(state, ok, NOW) is state


def test_overload_is_short_and_never_shortens_a_longer_cooldown() -> None:
    overloaded = RateLimitInfo(kind=RateLimitKind.OVERLOADED)
    fresh = apply_rate_limit(RateLimitState(), overloaded, NOW)
    assert fresh.limited_until_ms == NOW + 10_000
    long = RateLimitState(limited_until_ms=NOW + 3_600_000, consecutive=2)
    kept = apply_rate_limit(long, overloaded, NOW)
    assert kept.limited_until_ms == NOW + 3_600_000
    assert kept.consecutive == 2


def test_success_ends_a_cooldown_and_resets_the_streak_after_a_quiet_period() -> None:
    benched = RateLimitState(limited_until_ms=NOW + 60_000, limited_at_ms=NOW, consecutive=3)
    ok = RateLimitInfo(kind=RateLimitKind.NONE, status="allowed", remaining=10)
    soon = apply_rate_limit(benched, ok, NOW + 1_000)
    assert soon.limited_until_ms is None
    assert soon.consecutive == 3
    assert soon.status == "allowed"
    later = apply_rate_limit(benched, ok, NOW + 300_000)
    assert later.consecutive == 0


@given(states, infos)
def test_no_cooldown_outlives_an_announced_reset(
    state: RateLimitState, info: RateLimitInfo
) -> None:
    result = apply_rate_limit(state, info, NOW)
    if (
        info.kind is RateLimitKind.ACCOUNT_QUOTA
        and info.reset_at_ms is not None
        and info.reset_at_ms > NOW
    ):
        assert result.limited_until_ms is not None
        assert result.limited_until_ms <= info.reset_at_ms


@given(states, infos)
def test_every_new_cooldown_is_bounded(state: RateLimitState, info: RateLimitInfo) -> None:
    result = apply_rate_limit(state, info, NOW)
    if result.limited_until_ms is not None and result.limited_until_ms != state.limited_until_ms:
        assert result.limited_until_ms <= NOW + POLICY.max_quota_ms


@given(states, infos)
def test_only_quota_overload_and_out_of_credits_start_cooldowns(
    state: RateLimitState, info: RateLimitInfo
) -> None:
    result = apply_rate_limit(state, info, NOW)
    if info.kind is RateLimitKind.REQUEST_SCOPED:
        assert result.limited_until_ms == state.limited_until_ms
    if info.kind is RateLimitKind.NONE:
        assert not result.cooling_down(NOW)
