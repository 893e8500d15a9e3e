"""The usage cache: representative usage, stale expiry and window rollover."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.core import FakeClock, UsageWindow
from better_ccflare.load_balancer import AccountUsage
from better_ccflare.proxy._usage_cache import (
    UsageCache,
    account_usage_from_windows,
    rolled_over_windows,
)

NOW = 1_800_000_000_000
HOUR = 3_600_000
HARD = ("five_hour", "seven_day", "seven_day_oauth_apps")
SOFT = ("seven_day_opus", "seven_day_sonnet", "tokens_limit", "daily")

windows_st = st.lists(
    st.builds(
        UsageWindow,
        key=st.sampled_from(HARD + SOFT),
        utilization=st.floats(min_value=0, max_value=150, allow_nan=False),
        resets_at_ms=st.none() | st.integers(min_value=NOW, max_value=NOW + 8 * 24 * HOUR),
    ),
    max_size=8,
).map(lambda ws: tuple({w.key: w for w in ws}.values()))


def w(key: str, utilization: float, resets_at_ms: int | None = None) -> UsageWindow:
    return UsageWindow(key=key, utilization=utilization, resets_at_ms=resets_at_ms)


@given(windows_st)
def test_utilization_is_the_max_over_hard_windows_only(windows: tuple[UsageWindow, ...]) -> None:
    usage = account_usage_from_windows(windows)
    hard = [x.utilization for x in windows if x.key in HARD]
    assert usage.utilization == (max(hard) if hard else None)


@given(windows_st)
def test_reset_comes_from_a_window_at_the_max(windows: tuple[UsageWindow, ...]) -> None:
    usage = account_usage_from_windows(windows)
    if usage.resets_at_ms is not None:
        assert any(
            x.key in HARD
            and x.utilization == usage.utilization
            and x.resets_at_ms == usage.resets_at_ms
            for x in windows
        )


@given(windows_st)
def test_weekly_reset_is_seven_days(windows: tuple[UsageWindow, ...]) -> None:
    weekly = [x.resets_at_ms for x in windows if x.key == "seven_day"]
    assert account_usage_from_windows(windows).weekly_resets_at_ms == (
        weekly[0] if weekly else None
    )


def test_per_model_windows_do_not_gate_the_account() -> None:
    usage = account_usage_from_windows(
        [w("five_hour", 20, NOW + HOUR), w("seven_day_opus", 100, NOW + 2 * HOUR)]
    )
    assert usage == AccountUsage(utilization=20, resets_at_ms=NOW + HOUR)


def test_representative_reset_is_that_of_the_most_used_window() -> None:
    usage = account_usage_from_windows(
        [w("five_hour", 40, NOW + HOUR), w("seven_day", 90, NOW + 72 * HOUR)]
    )
    assert usage == AccountUsage(
        utilization=90, resets_at_ms=NOW + 72 * HOUR, weekly_resets_at_ms=NOW + 72 * HOUR
    )


def test_tie_takes_the_later_reset() -> None:
    usage = account_usage_from_windows(
        [w("five_hour", 100, NOW + HOUR), w("seven_day", 100, NOW + 9 * HOUR)]
    )
    assert usage.resets_at_ms == NOW + 9 * HOUR


def test_no_hard_windows_is_unknown_usage() -> None:
    assert account_usage_from_windows([w("tokens_limit", 99, NOW)]) == AccountUsage()


def test_fresh_entry_appears_in_the_usage_map() -> None:
    cache = UsageCache(clock=FakeClock(NOW))
    cache.update("a", [w("five_hour", 55, NOW + HOUR)])
    assert cache.usage_map() == {"a": AccountUsage(utilization=55, resets_at_ms=NOW + HOUR)}


def test_stale_entry_is_unknown() -> None:
    clock = FakeClock(NOW)
    cache = UsageCache(clock=clock, ttl_ms=600_000)
    cache.update("a", [w("five_hour", 100, NOW + 5 * HOUR)])
    clock.advance(600_000)
    assert "a" in cache.usage_map()
    clock.advance(1)
    assert cache.usage_map() == {}
    assert cache.entry("a") is None


def test_expiry_keeps_entries_that_were_refreshed() -> None:
    clock = FakeClock(NOW)
    cache = UsageCache(clock=clock, ttl_ms=1_000)
    cache.update("a", [w("five_hour", 10)])
    cache.update("b", [w("five_hour", 20)])
    clock.advance(800)
    cache.update("a", [w("five_hour", 30)])
    clock.advance(300)
    assert dict(cache.usage_map()) == {"a": AccountUsage(utilization=30)}


def test_usage_map_is_reused_until_something_changes() -> None:
    cache = UsageCache(clock=FakeClock(NOW))
    cache.update("a", [w("five_hour", 10)])
    first = cache.usage_map()
    assert cache.usage_map() is first
    cache.update("b", [w("five_hour", 10)])
    second = cache.usage_map()
    assert second is not first
    assert set(first) == {"a"}
    assert set(second) == {"a", "b"}


def test_forget_drops_the_account() -> None:
    cache = UsageCache(clock=FakeClock(NOW))
    cache.update("a", [w("five_hour", 10)])
    cache.forget("a")
    assert cache.usage_map() == {}


def test_reset_moving_later_than_the_tolerance_is_a_rollover() -> None:
    resets: list[str] = []
    cache = UsageCache(clock=FakeClock(NOW), on_window_reset=resets.append)
    cache.update("a", [w("five_hour", 90, NOW + HOUR)])
    rolled = cache.update("a", [w("five_hour", 2, NOW + 6 * HOUR)])
    assert rolled == ("five_hour",)
    assert resets == ["a"]


def test_sub_tolerance_jitter_is_not_a_rollover() -> None:
    resets: list[str] = []
    cache = UsageCache(clock=FakeClock(NOW), on_window_reset=resets.append)
    cache.update("a", [w("five_hour", 50, NOW + HOUR)])
    assert cache.update("a", [w("five_hour", 51, NOW + HOUR + 999)]) == ()
    assert cache.update("a", [w("five_hour", 52, NOW + HOUR + 60_999)]) == ()
    assert resets == []


@given(
    old=st.integers(min_value=NOW, max_value=NOW + 10 * HOUR),
    shift=st.integers(min_value=-HOUR, max_value=HOUR),
)
def test_rollover_iff_reset_advanced_beyond_tolerance(old: int, shift: int) -> None:
    rolled = rolled_over_windows(
        [w("five_hour", 1, old)], [w("five_hour", 1, old + shift)], tolerance_ms=60_000
    )
    assert rolled == (("five_hour",) if shift > 60_000 else ())


def test_per_model_window_reset_is_not_a_rollover() -> None:
    assert (
        rolled_over_windows([w("seven_day_opus", 1, NOW)], [w("seven_day_opus", 1, NOW + 7 * HOUR)])
        == ()
    )


def test_first_update_is_not_a_rollover() -> None:
    resets: list[str] = []
    cache = UsageCache(clock=FakeClock(NOW), on_window_reset=resets.append)
    assert cache.update("a", [w("five_hour", 1, NOW + HOUR)]) == ()
    assert resets == []


def test_rollover_is_detected_against_a_stale_entry() -> None:
    clock = FakeClock(NOW)
    resets: list[str] = []
    cache = UsageCache(clock=clock, on_window_reset=resets.append)
    cache.update("a", [w("five_hour", 100, NOW + HOUR)])
    clock.advance(2 * HOUR)
    cache.update("a", [w("five_hour", 0, NOW + 7 * HOUR)])
    assert resets == ["a"]


def test_a_failing_callback_does_not_break_the_update() -> None:
    def boom(account_id: str) -> None:
        raise RuntimeError(account_id)

    cache = UsageCache(clock=FakeClock(NOW), on_window_reset=boom)
    cache.update("a", [w("five_hour", 100, NOW)])
    assert cache.update("a", [w("five_hour", 0, NOW + 5 * HOUR)]) == ("five_hour",)
    assert cache.usage_map()["a"].utilization == 0


def test_windows_with_headroom_are_told_and_full_ones_are_not() -> None:
    roomy: list[str] = []
    cache = UsageCache(clock=FakeClock(NOW), on_headroom=roomy.append)
    cache.update("full", [w("five_hour", 40, NOW + HOUR), w("seven_day", 100, NOW + 5 * HOUR)])
    cache.update("unknown", [w("seven_day_opus", 10, NOW + HOUR)])
    cache.update("roomy", [w("five_hour", 99.5, NOW + HOUR), w("seven_day_opus", 100)])
    assert roomy == ["roomy"]
