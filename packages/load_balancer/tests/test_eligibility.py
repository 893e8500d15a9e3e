"""Which accounts may be routed to, and which pauses auto-fallback lifts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from better_ccflare.core import Account, PauseReason, StrategyName
from better_ccflare.load_balancer import (
    AccountUsage,
    create_strategy,
    eligible_at_ms,
    is_eligible,
    is_usage_exhausted,
    would_auto_unpause,
)

from .builders import HOUR, NOW, account, ids, request

ALL_STRATEGIES = list(StrategyName)


def test_an_idle_account_is_eligible() -> None:
    assert is_eligible(account("a"), None, NOW)


def test_a_paused_account_is_not_eligible() -> None:
    assert not is_eligible(account("a", paused=True), None, NOW)


def test_an_account_needing_re_login_is_not_eligible() -> None:
    assert not is_eligible(account("a", requires_reauth=True), None, NOW)


def test_a_cooldown_ends_exactly_at_limited_until() -> None:
    cooling = account("a", limited_until_ms=NOW)
    assert not is_eligible(cooling, None, NOW - 1)
    assert is_eligible(cooling, None, NOW)


@pytest.mark.parametrize(
    ("usage", "exhausted"),
    [
        (AccountUsage(utilization=100, resets_at_ms=NOW + 1), True),
        (AccountUsage(utilization=130, resets_at_ms=None), True),
        (AccountUsage(utilization=100, resets_at_ms=NOW), False),
        (AccountUsage(utilization=99.9, resets_at_ms=NOW + 1), False),
        (AccountUsage(utilization=None, resets_at_ms=NOW + 1), False),
        (None, False),
    ],
)
def test_usage_is_exhausted_at_100_percent_until_the_window_resets(
    usage: AccountUsage | None, exhausted: bool
) -> None:
    assert is_usage_exhausted(usage, NOW) is exhausted
    assert is_eligible(account("a"), usage, NOW) is not exhausted


@pytest.mark.parametrize(
    "reason", [None, PauseReason.OVERAGE, PauseReason.RATE_LIMIT_WINDOW], ids=str
)
def test_window_pauses_lift_once_the_window_has_reset(reason: PauseReason | None) -> None:
    assert would_auto_unpause(
        account("a", paused=True, pause_reason=reason, auto_fallback=True, reset_at_ms=NOW - 1001),
        NOW,
    )


@pytest.mark.parametrize(
    "reason", [PauseReason.MANUAL, PauseReason.FAILURE_THRESHOLD, PauseReason.PEAK_HOURS], ids=str
)
def test_deliberate_pauses_never_lift_by_themselves(reason: PauseReason) -> None:
    assert not would_auto_unpause(
        account("a", paused=True, pause_reason=reason, auto_fallback=True, reset_at_ms=NOW - 1001),
        NOW,
    )


def test_auto_unpause_needs_the_reset_over_a_second_ago() -> None:
    paused = account("a", paused=True, auto_fallback=True, reset_at_ms=NOW - 1000)
    assert not would_auto_unpause(paused, NOW)
    assert would_auto_unpause(paused, NOW + 1)


@pytest.mark.parametrize(
    "paused",
    [
        account("off", paused=True, auto_fallback=False, reset_at_ms=NOW - 5000),
        account("unknown-reset", paused=True, auto_fallback=True, reset_at_ms=None),
        account("future-reset", paused=True, auto_fallback=True, reset_at_ms=NOW + 5000),
        account(
            "api-key",
            provider="claude-console-api",
            paused=True,
            auto_fallback=True,
            reset_at_ms=NOW - 5000,
        ),
        account("running", paused=False, auto_fallback=True, reset_at_ms=NOW - 5000),
    ],
    ids=lambda paused: paused.id,
)
def test_auto_unpause_needs_opt_in_a_plan_provider_a_past_reset_and_a_pause(
    paused: Account,
) -> None:
    assert not would_auto_unpause(paused, NOW)


def test_zai_accounts_auto_unpause_too() -> None:
    assert would_auto_unpause(
        account("z", provider="zai", paused=True, auto_fallback=True, reset_at_ms=NOW - 5000), NOW
    )


@pytest.mark.parametrize("name", ALL_STRATEGIES, ids=str)
def test_every_strategy_leaves_out_ineligible_accounts(name: StrategyName) -> None:
    pool = [
        account("paused", paused=True, pause_reason=PauseReason.MANUAL),
        account("relogin", requires_reauth=True),
        account("cooling", limited_until_ms=NOW + 1),
        account("exhausted"),
        account("ok", priority=9),
    ]
    exhausted = {"exhausted": AccountUsage(utilization=100, resets_at_ms=NOW + 1)}
    selection = create_strategy(name).select(pool, request(usage=exhausted))
    assert ids(selection) == ["ok"]


@pytest.mark.parametrize("name", ALL_STRATEGIES, ids=str)
def test_every_strategy_answers_empty_when_nothing_is_eligible(name: StrategyName) -> None:
    pool = [account("paused", paused=True), account("cooling", limited_until_ms=NOW + 1)]
    strategy = create_strategy(name)
    selection = strategy.select(pool, request())
    assert selection.order == ()
    assert selection.primary is None
    assert strategy.peek(pool, request()) is None


@pytest.mark.parametrize("name", ALL_STRATEGIES, ids=str)
def test_every_strategy_lifts_window_pauses_and_routes_to_them(name: StrategyName) -> None:
    lifted = account("lifted", paused=True, auto_fallback=True, reset_at_ms=NOW - 5000)
    still_cooling = account(
        "cooling",
        paused=True,
        auto_fallback=True,
        reset_at_ms=NOW - 5000,
        limited_until_ms=NOW + 1,
    )
    selection = create_strategy(name).select([lifted, still_cooling], request())
    assert ids(selection) == ["lifted"]
    assert selection.unpause == {"lifted"}


@pytest.mark.parametrize("name", ALL_STRATEGIES, ids=str)
def test_an_account_listed_twice_is_ordered_once(name: StrategyName) -> None:
    twice = account("a")
    selection = create_strategy(name).select([twice, account("b"), twice], request())
    assert sorted(ids(selection)) == ["a", "b"]


# --------------------------------------------------------------------------- when eligible again


def routable(candidate: Account, usage: AccountUsage | None, now_ms: int) -> bool:
    """As the strategies count it: eligible, or paused in a way auto-fallback lifts now."""
    return is_eligible(candidate, usage, now_ms) or (
        would_auto_unpause(candidate, now_ms)
        and is_eligible(replace(candidate, paused=False), usage, now_ms)
    )


_offsets = st.one_of(st.none(), st.integers(-HOUR, HOUR))


@st.composite
def account_states(draw: st.DrawFn) -> tuple[Account, AccountUsage | None]:
    def at(offset: int | None) -> int | None:
        return None if offset is None else NOW + offset

    candidate = account(
        "a",
        provider=draw(st.sampled_from(["anthropic", "zai", "claude-console-api"])),
        reset_at_ms=at(draw(_offsets)),
        limited_until_ms=at(draw(_offsets)),
        paused=draw(st.booleans()),
        pause_reason=draw(st.one_of(st.none(), st.sampled_from(PauseReason))),
        auto_fallback=draw(st.booleans()),
        requires_reauth=draw(st.booleans()),
    )
    usage = draw(
        st.one_of(
            st.none(),
            st.builds(
                AccountUsage,
                utilization=st.one_of(st.none(), st.floats(0, 150)),
                resets_at_ms=st.builds(at, _offsets),
            ),
        )
    )
    return candidate, usage


@given(account_states())
def test_eligible_at_is_the_first_moment_the_strategies_would_route(
    state: tuple[Account, AccountUsage | None],
) -> None:
    candidate, usage = state
    when = eligible_at_ms(candidate, usage, NOW)
    if when is None:
        assert not routable(candidate, usage, NOW)
        return
    assert when >= NOW
    assert routable(candidate, usage, when)
    if when > NOW:
        assert not routable(candidate, usage, when - 1)


def test_a_deliberate_pause_has_no_end_of_its_own() -> None:
    paused = account("a", paused=True, pause_reason=PauseReason.MANUAL, limited_until_ms=NOW + 1)
    assert eligible_at_ms(paused, None, NOW) is None


def test_the_last_obstacle_decides() -> None:
    cooling = account("a", limited_until_ms=NOW + 60_000)
    exhausted = AccountUsage(utilization=100, resets_at_ms=NOW + 90_000)
    assert eligible_at_ms(cooling, exhausted, NOW) == NOW + 90_000
