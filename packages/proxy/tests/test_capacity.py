"""Capacity as the 429 reply, hold-until-reset and ``/api/capacity`` read it: properties over
any accounts and usage, and the cases that decide between a limit and a transient outage."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.core import Account, PauseReason, RateLimitReason, RateLimitState, UsageWindow
from better_ccflare.core.testing import accounts
from better_ccflare.load_balancer import AccountUsage, eligible_at_ms
from better_ccflare.proxy._capacity import UnavailableReason, account_capacity, pool_capacity

NOW = 1_800_000_000_000
_offsets = st.integers(min_value=-86_400_000, max_value=8 * 86_400_000)
usages = st.none() | st.builds(
    AccountUsage,
    utilization=st.none() | st.floats(min_value=0, max_value=150, allow_nan=False),
    resets_at_ms=st.none() | _offsets.map(lambda d: NOW + d),
)
windows = st.lists(
    st.builds(
        UsageWindow,
        key=st.sampled_from(("five_hour", "seven_day", "seven_day_opus", "daily")),
        utilization=st.floats(min_value=0, max_value=150, allow_nan=False),
        resets_at_ms=st.none() | _offsets.map(lambda d: NOW + d),
    ),
    max_size=4,
).map(tuple)
pools = st.lists(st.tuples(accounts, usages, windows), max_size=5)


@given(accounts, usages, windows)
def test_an_account_can_serve_exactly_when_a_strategy_may_route_to_it(
    account: Account, usage: AccountUsage | None, polled: tuple[UsageWindow, ...]
) -> None:
    read = account_capacity(account, usage, polled, NOW)
    assert read.can_serve == (eligible_at_ms(account, usage, NOW) == NOW)
    assert read.available_at_ms == eligible_at_ms(account, usage, NOW)
    assert (read.limiting_window is None) or not read.can_serve


@given(pools)
def test_the_pool_is_out_on_windows_only_when_every_account_in_rotation_is(
    pool: list[tuple[Account, AccountUsage | None, tuple[UsageWindow, ...]]],
) -> None:
    read = [account_capacity(a, u, w, NOW) for a, u, w in pool]
    summed = pool_capacity(read)
    assert summed.can_serve == any(a.can_serve for a in read)
    in_rotation = [a for a in read if a.in_rotation]
    assert summed.windows_exhausted == (
        not summed.can_serve and bool(in_rotation) and all(a.window_limited for a in in_rotation)
    )
    known = [a.available_at_ms for a in read if a.available_at_ms is not None]
    assert summed.available_at_ms == (min(known) if known else None)
    for window in summed.windows:
        assert 0 <= window.exhausted <= window.accounts


def account(**fields: object) -> Account:
    return msgspec.structs.replace(
        Account(id="a", name="a", provider="anthropic", created_at_ms=0), **fields
    )


def test_a_window_at_100_percent_is_used_up_until_its_reset_and_names_itself() -> None:
    polled = (
        UsageWindow(key="five_hour", utilization=100.0, resets_at_ms=NOW + 60_000),
        UsageWindow(key="seven_day", utilization=100.0, resets_at_ms=NOW + 600_000),
        UsageWindow(key="seven_day_opus", utilization=100.0, resets_at_ms=NOW + 900_000),
    )
    usage = AccountUsage(utilization=100.0, resets_at_ms=NOW + 600_000)

    read = account_capacity(account(), usage, polled, NOW)

    assert read.reason is UnavailableReason.USAGE_EXHAUSTED
    assert read.available_at_ms == NOW + 600_000
    assert read.limiting_window == "seven_day"  # the account-wide window resetting last
    assert [w.exhausted for w in read.windows] == [True, True, True]


def test_a_rejected_subscription_without_extra_usage_is_out_on_its_window() -> None:
    limit = RateLimitState(
        status="rejected", limited_until_ms=NOW + 1000, reason=RateLimitReason.OUT_OF_CREDITS
    )
    assert account_capacity(account(rate_limit=limit), None, (), NOW).window_limited


def test_a_console_key_without_credit_is_not_out_on_a_window() -> None:
    limit = RateLimitState(limited_until_ms=NOW + 1000, reason=RateLimitReason.OUT_OF_CREDITS)
    read = account_capacity(account(rate_limit=limit), None, (), NOW)
    assert read.reason is UnavailableReason.OUT_OF_CREDITS
    assert not read.window_limited


def test_paused_accounts_are_out_of_rotation() -> None:
    paused = account_capacity(account(paused=True, pause_reason=PauseReason.MANUAL), None, (), NOW)
    assert (paused.reason, paused.in_rotation, paused.available_at_ms) == (
        UnavailableReason.PAUSED,
        False,
        None,
    )
    assert not pool_capacity([paused]).windows_exhausted
