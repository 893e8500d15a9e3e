"""The per-key limits' bookkeeping, against simple reference models on generated timelines."""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.core import KeyLimits, KeyUsageTotals
from better_ccflare.proxy._key_limits import KeyLimiter, Limit, periods_at

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday
MINUTE = 60_000
DAY = 86_400_000

steps = st.lists(st.integers(min_value=0, max_value=30_000), min_size=1, max_size=60)


def _in_last_minute(times: list[int], now: int) -> list[int]:
    return [t for t in times if t > now - MINUTE]


@given(rpm=st.integers(min_value=1, max_value=5), gaps=steps)
def test_requests_per_minute_admit_exactly_while_the_last_minute_has_room(
    rpm: int, gaps: list[int]
) -> None:
    limits = KeyLimits(rpm=rpm)
    limiter = KeyLimiter(T0)
    admitted: list[int] = []
    now = T0
    for gap in gaps:
        now += gap
        refusal = limiter.admit("k", "dev", limits, "m", now)
        recent = _in_last_minute(admitted, now)
        if len(recent) < rpm:
            assert refusal is None
            admitted.append(now)
            continue
        assert refusal is not None
        assert refusal.limit is Limit.RPM
        # It frees exactly when enough admissions have aged out of the sliding minute.
        frees = refusal.frees_at_ms
        assert frees is not None
        assert (
            len(_in_last_minute(admitted, frees)) < rpm <= len(_in_last_minute(admitted, frees - 1))
        )


@given(
    tpm=st.integers(min_value=1, max_value=500),
    requests=st.lists(
        st.tuples(st.integers(min_value=0, max_value=30_000), st.integers(0, 300)),
        min_size=1,
        max_size=40,
    ),
)
def test_tokens_per_minute_refuse_once_the_last_minute_used_them_and_say_when_they_free(
    tpm: int, requests: list[tuple[int, int]]
) -> None:
    limits = KeyLimits(tpm=tpm)
    limiter = KeyLimiter(T0)
    used: list[tuple[int, int]] = []
    now = T0

    def in_window(at: int) -> int:
        return sum(tokens for t, tokens in used if t > at - MINUTE)

    for gap, tokens in requests:
        now += gap
        refusal = limiter.admit("k", "dev", limits, "m", now)
        if in_window(now) < tpm:
            assert refusal is None
            limiter.finished("k", tokens, None, now)
            used.append((now, tokens))
            continue
        assert refusal is not None
        assert refusal.limit is Limit.TPM
        frees = refusal.frees_at_ms
        assert frees is not None
        assert in_window(frees) < tpm <= in_window(frees - 1)


@given(
    budget=st.floats(min_value=0.01, max_value=5.0),
    requests=st.lists(
        st.tuples(st.integers(min_value=0, max_value=6 * 3_600_000), st.floats(0.0, 1.0)),
        min_size=1,
        max_size=40,
    ),
)
def test_a_daily_budget_admits_until_spent_and_starts_afresh_each_utc_day(
    budget: float, requests: list[tuple[int, float]]
) -> None:
    limits = KeyLimits(budget_daily_usd=budget)
    limiter = KeyLimiter(T0)
    spent_by_day: dict[int, float] = {}
    now = T0
    for gap, cost in requests:
        now += gap
        day = now // DAY
        spent = spent_by_day.get(day, 0.0)
        refusal = limiter.admit("k", "dev", limits, "m", now)
        if spent < budget:
            assert refusal is None
            limiter.finished("k", 0, cost, now)
            spent_by_day[day] = spent + cost
        else:
            assert refusal is not None
            assert refusal.limit is Limit.BUDGET_DAILY
            assert refusal.frees_at_ms == (day + 1) * DAY
    # Never more over budget than the last request admitted under it cost.
    for spent in spent_by_day.values():
        assert spent < budget + 1.0


@given(
    cap=st.integers(min_value=1, max_value=4),
    actions=st.lists(st.booleans(), min_size=1, max_size=60),
)
def test_concurrency_never_exceeds_the_cap_and_frees_on_release(
    cap: int, actions: list[bool]
) -> None:
    limits = KeyLimits(max_concurrent=cap)
    limiter = KeyLimiter(T0)
    limiter.track("k", limits, T0)
    inflight = 0
    for enter in actions:
        if enter:
            assert limiter.admit("k", "dev", limits, "m", T0) is None
            refusal = limiter.try_enter("k", "dev", T0)
            if inflight < cap:
                assert refusal is None
                inflight += 1
            else:
                assert refusal is not None
                assert refusal.limit is Limit.CONCURRENCY
        elif inflight:
            limiter.release("k")
            inflight -= 1
        usage = limiter.usage("k", T0)
        assert usage is not None
        assert usage[2] == inflight <= cap


patterns = st.lists(
    st.text(alphabet="ab-*?[]!", min_size=1, max_size=6), min_size=1, max_size=3
).map(tuple)


@given(models=patterns, model=st.text(alphabet="ab-", max_size=6))
def test_the_model_allow_list_means_what_fnmatch_means(models: tuple[str, ...], model: str) -> None:
    limiter = KeyLimiter(T0)
    refusal = limiter.admit("k", "dev", KeyLimits(models=models), model, T0)
    allowed = any(fnmatch.fnmatchcase(model, p) for p in models)
    assert (refusal is None) == allowed
    if refusal is not None:
        assert refusal.limit is Limit.MODEL
        assert refusal.frees_at_ms is None


def test_a_request_naming_no_model_passes_an_allow_list() -> None:
    # GET /v1/models, say: there is no model to refuse.
    assert KeyLimiter(T0).admit("k", "dev", KeyLimits(models=("claude-*",)), None, T0) is None


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_periods_are_the_utc_day_the_week_from_monday_and_the_month(now_ms: int) -> None:
    periods = periods_at(now_ms)
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)

    def ms(moment: datetime) -> int:
        return int(moment.timestamp()) * 1000

    assert (periods.day_start_ms, periods.day_end_ms) == (ms(day), ms(day + timedelta(days=1)))
    assert (periods.week_start_ms, periods.week_end_ms) == (
        ms(week),
        ms(week + timedelta(days=7)),
    )
    assert (periods.month_start_ms, periods.month_end_ms) == (ms(month), ms(next_month))


def test_weekly_and_monthly_spend_outlive_the_day_and_reset_with_their_period() -> None:
    limits = KeyLimits(budget_weekly_usd=10.0, budget_monthly_usd=100.0)
    limiter = KeyLimiter(T0)  # a Thursday, the first of a month
    assert limiter.admit("k", "dev", limits, "m", T0) is None
    limiter.finished("k", 0, 10.0, T0)

    friday = limiter.admit("k", "dev", limits, "m", T0 + DAY)
    monday = limiter.admit("k", "dev", limits, "m", T0 + 4 * DAY)

    assert friday is not None
    assert friday.limit is Limit.BUDGET_WEEKLY
    assert friday.frees_at_ms == T0 + 4 * DAY  # Monday 2026-01-05
    assert monday is None
    assert limiter.usage("k", T0 + 4 * DAY) == (0, 0, 0, 0.0, 0.0, 10.0)


def test_seeding_replaces_the_spend_and_adds_other_instances_tokens() -> None:
    limits = KeyLimits(tpm=100, budget_daily_usd=1.0)
    limiter = KeyLimiter(T0)
    assert limiter.admit("k", "dev", limits, "m", T0) is None
    limiter.finished("k", 30, 0.25, T0)  # in the store by the time it is read:
    limiter.mark()

    limiter.seed(
        "k",
        limits,
        day=KeyUsageTotals(cost_usd=1.0),
        week=KeyUsageTotals(cost_usd=1.0),
        month=KeyUsageTotals(cost_usd=1.0),
        minute_tokens=80,
        now_ms=T0 + 1_000,
    )

    assert limiter.usage("k", T0 + 1_000) == (0, 80, 0, 1.0, 1.0, 1.0)
    refusal = limiter.admit("k", "dev", limits, "m", T0 + 1_000)
    assert refusal is not None
    assert refusal.limit is Limit.BUDGET_DAILY


def test_spend_counted_while_a_seed_was_read_is_kept_on_top_of_it() -> None:
    limits = KeyLimits(budget_daily_usd=1.0)
    limiter = KeyLimiter(T0)
    limiter.track("k", limits, T0)
    limiter.mark()
    limiter.finished("k", 0, 0.25, T0)  # ends while the totals are being read

    totals = KeyUsageTotals(cost_usd=0.5)
    limiter.seed("k", limits, day=totals, week=totals, month=totals, minute_tokens=0, now_ms=T0)

    assert limiter.usage("k", T0) == (0, 0, 0, 0.75, 0.75, 0.75)


def test_tokens_are_not_kept_for_a_key_without_a_tokens_limit() -> None:
    limiter = KeyLimiter(T0)
    limiter.track("k", KeyLimits(budget_daily_usd=1.0), T0)
    for n in range(1_000):
        limiter.finished("k", 100, None, T0 + n)
    assert limiter.usage("k", T0 + 1_000) == (0, 0, 0, 0.0, 0.0, 0.0)
