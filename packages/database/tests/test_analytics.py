"""Request analytics: every query agrees with a plain-Python reading of the same records.

The property tests write random histories through the store and compare each analytics method
with an oracle computed from the records themselves. The histories are written in two phases
with rollup refreshes at random times between and after them, and some records are first written
in another version (another hour, outcome, cost) and rewritten later, so answers combine rolled
hours and days, stale hours and raw rows. The examples after them spell out the rules the oracle
encodes, and the plan tests check that the queries search an index.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar, cast

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from better_ccflare.core import BillingType, RequestRecord, TokenUsage
from better_ccflare.core.testing import request_records
from better_ccflare.database import (
    Dimension,
    ErrorGroup,
    GroupStats,
    Metrics,
    RequestFilter,
    SecretKey,
    SeriesPoint,
    Store,
    Totals,
)
from better_ccflare.database._sqlite._analytics import (
    Query,
    errors_query,
    group_queries,
    requests_query,
    series_queries,
    session_query,
    totals_queries,
)
from better_ccflare.database._sqlite._rollups import NO_ROLLUPS, Coverage

from . import rawdb
from .builders import DAY_MS, T0, request

_T = TypeVar("_T")

HOUR_MS = 3_600_000
EXAMPLES = settings(max_examples=100, deadline=None)
ACCOUNTS = ("acc-a", "acc-b", "acc-c")
MODELS = ("opus", "sonnet", "haiku")
KEYS = ("key-1", "key-2")
SESSIONS = ("session-1", "session-2")
PROJECTS = ("alpha", "beta")
DIMENSIONS: tuple[Dimension, ...] = ("model", "account", "api_key", "account_model")

# Times cluster around T0, a UTC midnight, so buckets of every size have edges among them; most
# are drawn from a few instants, so that requests share a timestamp and ordering ties are tested.
EDGES = (T0 - HOUR_MS - 1, T0 - HOUR_MS, T0 - 1, T0, T0 + 1, T0 + 59_999, T0 + 60_000)
times = st.one_of(*[st.sampled_from(EDGES)] * 3, st.integers(T0 - 3 * HOUR_MS, T0 + 3 * HOUR_MS))


def _history(drawn: list[tuple[RequestRecord, ...]]) -> list[RequestRecord]:
    return [
        msgspec.structs.replace(
            record,
            id=f"r{index:03d}",
            timestamp_ms=timestamp,
            account_id=account,
            model=model,
            api_key_id=api_key,
            client_session_id=session,
            error_message=message,
            status_code=status,
            project=project,
        )
        for index, (
            record,
            timestamp,
            account,
            model,
            api_key,
            session,
            message,
            status,
            project,
        ) in enumerate(drawn)
    ]


# Core's random records, with the fields that are filtered or grouped on drawn from small sets
# so that filters match and groups collide; ids are unique, as request ids are.
histories = st.lists(
    st.tuples(
        request_records,
        times,
        st.sampled_from((None, *ACCOUNTS)),
        st.sampled_from((None, *MODELS)),
        st.sampled_from((None, *KEYS)),
        st.sampled_from((None, *SESSIONS)),
        st.sampled_from((None, "overloaded", "rate limited")),
        st.sampled_from((None, 429, 529)),
        st.sampled_from((None, *PROJECTS)),
    ),
    min_size=4,
    max_size=40,
).map(_history)


def _any_or(values: tuple[_T, ...], max_size: int) -> st.SearchStrategy[tuple[_T, ...]]:
    """Mostly no restriction (a filter on every field would rarely match anything)."""
    some = st.lists(st.sampled_from(values), min_size=1, max_size=max_size).map(tuple)
    return st.one_of(st.just(()), st.just(()), some)


filters = st.builds(
    RequestFilter,
    since_ms=st.one_of(st.none(), st.none(), times),
    until_ms=st.one_of(st.none(), st.none(), times),
    account_ids=_any_or((None, *ACCOUNTS, "acc-unknown"), 3),
    models=_any_or((*MODELS, "unknown-model"), 2),
    api_key_ids=_any_or(KEYS, 2),
    projects=_any_or((*PROJECTS, "unknown-project"), 2),
    status=st.sampled_from(("all", "all", "success", "error")),
    # Searches that hit the drawn fields (in another case too), a status code, an id, nothing,
    # and LIKE's own wildcards, which must match only themselves.
    text=st.one_of(
        *[st.none()] * 4,
        st.sampled_from(("OPUS", "son", "overload", "429", "r00", "nothing-like-it", "%", "_")),
    ),
    text_account_ids=_any_or(ACCOUNTS, 1),
)
limits = st.integers(min_value=1, max_value=8)


class Writes(msgspec.Struct, frozen=True):
    """How a history is written: in two phases, with rollup refreshes after each."""

    first_phase: float
    """The share of the records written in the first phase."""
    first_refresh_ms: int | None
    second_refresh_ms: int | None
    rewritten: frozenset[int]
    """Records first written in another version, then rewritten as drawn."""
    shift_ms: int
    """How far the other version's timestamp is from the final one."""


refresh_times = st.one_of(st.none(), times, st.integers(T0 - 2 * DAY_MS, T0 + 2 * DAY_MS))
writes = st.builds(
    Writes,
    first_phase=st.floats(min_value=0, max_value=1),
    first_refresh_ms=refresh_times,
    second_refresh_ms=refresh_times,
    rewritten=st.frozensets(st.integers(min_value=0, max_value=39), max_size=8),
    shift_ms=st.sampled_from((0, 1, -1, HOUR_MS, -HOUR_MS, -3 * HOUR_MS, DAY_MS)),
)


def earlier_version(record: RequestRecord, shift_ms: int) -> RequestRecord:
    """Another version, differing only in columns a rewrite overwrites (not NULL-kept ones)."""
    return msgspec.structs.replace(
        record,
        timestamp_ms=record.timestamp_ms + shift_ms,
        success=not record.success,
        cost_usd=(record.cost_usd or 0.0) + 1.0,
        usage=TokenUsage(input_tokens=7, output_tokens=3),
    )


# The oracle: what each query means, over the records as the proxy recorded them.


def matches(record: RequestRecord, where: RequestFilter) -> bool:
    return (
        (where.since_ms is None or record.timestamp_ms >= where.since_ms)
        and (where.until_ms is None or record.timestamp_ms < where.until_ms)
        and (not where.account_ids or record.account_id in where.account_ids)
        and (not where.models or record.model in where.models)
        and (not where.api_key_ids or record.api_key_id in where.api_key_ids)
        and (not where.projects or record.project in where.projects)
        and (where.status == "all" or record.success == (where.status == "success"))
        and (where.text is None or _found(record, where.text, where.text_account_ids))
    )


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _found(record: RequestRecord, text: str, account_ids: tuple[str, ...]) -> bool:
    """The search: a substring of a text field, ASCII letters in either case (as SQL's LIKE on
    SQLite and ILIKE under PostgreSQL's "C" collation fold them), or the exact status code."""
    needle = text.translate(_ASCII_LOWER)
    fields = (
        record.id,
        record.model,
        record.path,
        record.error_message,
        record.api_key_name,
        record.agent_used,
        record.project,
    )
    return (
        any(f is not None and needle in f.translate(_ASCII_LOWER) for f in fields)
        or str(record.status_code) == text
        or (record.account_id is not None and record.account_id in account_ids)
    )


def _mean(values: list[float] | list[int]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def metrics_of(records: list[RequestRecord]) -> Metrics:
    priced = [(r.cost_usd, r.billing_type) for r in records if r.cost_usd is not None]
    plan = [cost for cost, billing in priced if billing is BillingType.PLAN]
    other = [cost for cost, billing in priced if billing is not BillingType.PLAN]
    return Metrics(
        requests=len(records),
        successful=sum(r.success for r in records),
        input_tokens=sum(r.usage.input_tokens for r in records),
        output_tokens=sum(r.usage.output_tokens for r in records),
        cache_read_tokens=sum(r.usage.cache_read_input_tokens for r in records),
        cache_write_tokens=sum(r.usage.cache_creation_input_tokens for r in records),
        cost_usd=math.fsum(cost for cost, _ in priced),
        plan_cost_usd=math.fsum(plan),
        api_cost_usd=math.fsum(other),
        unpriced_requests=len(records) - len(priced),
        avg_response_time_ms=_mean(
            [r.response_time_ms for r in records if r.response_time_ms is not None]
        ),
        avg_output_tokens_per_second=_mean(
            [r.output_tokens_per_second for r in records if r.output_tokens_per_second is not None]
        ),
    )


def _none_first(value: str | int | None) -> tuple[bool, str | int]:
    """SQLite's ascending order: NULL first, then by value."""
    return (value is not None, value if value is not None else 0)


def _grouped(
    records: Iterable[RequestRecord], key: Callable[[RequestRecord], _T]
) -> dict[_T, list[RequestRecord]]:
    groups: dict[_T, list[RequestRecord]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return groups


def oracle_totals(records: list[RequestRecord], where: RequestFilter) -> Totals:
    matched = [r for r in records if matches(r, where)]
    accounts = {r.account_id for r in matched if r.account_id is not None}
    return Totals(metrics=metrics_of(matched), active_accounts=len(accounts))


def oracle_series(
    records: list[RequestRecord], where: RequestFilter, bucket_ms: int, *, by_model: bool
) -> list[SeriesPoint]:
    groups = _grouped(
        (r for r in records if matches(r, where)),
        lambda r: (r.timestamp_ms // bucket_ms * bucket_ms, r.model if by_model else None),
    )
    return [
        SeriesPoint(bucket_start_ms=start, model=model, metrics=metrics_of(groups[start, model]))
        for start, model in sorted(groups, key=lambda k: (k[0], _none_first(k[1])))
    ]


def _dimension_key(record: RequestRecord, dimension: Dimension) -> tuple[str | None, str | None]:
    return {
        "model": (record.model, None),
        "account": (record.account_id, None),
        "api_key": (record.api_key_id, None),
        "account_model": (record.account_id, record.model),
    }[dimension]


def oracle_group_by(
    records: list[RequestRecord], where: RequestFilter, dimension: Dimension, limit: int | None
) -> list[GroupStats]:
    groups = _grouped(
        (r for r in records if matches(r, where)), lambda r: _dimension_key(r, dimension)
    )
    ordered = sorted(
        groups.items(),
        key=lambda item: (-len(item[1]), _none_first(item[0][0]), _none_first(item[0][1])),
    )
    return [
        GroupStats(key=key, second_key=second_key, metrics=metrics_of(grouped))
        for (key, second_key), grouped in ordered[:limit]
    ]


def oracle_recent_errors(
    records: list[RequestRecord], where: RequestFilter, limit: int
) -> list[ErrorGroup]:
    groups = _grouped(
        (r for r in records if matches(r, where) and not r.success),
        lambda r: (r.error_message, r.account_id, r.status_code),
    )
    found = [
        ErrorGroup(
            error_message=message,
            account_id=account,
            status_code=status,
            count=len(grouped),
            last_seen_ms=max(r.timestamp_ms for r in grouped),
        )
        for (message, account, status), grouped in groups.items()
    ]
    found.sort(
        key=lambda g: (
            -g.last_seen_ms,
            _none_first(g.error_message),
            _none_first(g.account_id),
            _none_first(g.status_code),
        )
    )
    return found[:limit]


def oracle_requests(
    records: list[RequestRecord],
    where: RequestFilter,
    limit: int,
    before_ms: int | None,
    offset: int = 0,
) -> list[RequestRecord]:
    matched = [
        r
        for r in records
        if matches(r, where) and (before_ms is None or r.timestamp_ms < before_ms)
    ]
    return sorted(matched, key=lambda r: (-r.timestamp_ms, r.id))[offset : offset + limit]


def oracle_latest_account(
    records: list[RequestRecord], session: str, api_key_id: str | None
) -> str | None:
    served = [
        (r.timestamp_ms, order, r.account_id)
        for order, r in enumerate(records)
        if r.client_session_id == session
        and r.account_id is not None
        and (api_key_id is None or r.api_key_id == api_key_id)
    ]
    return max(served)[2] if served else None


def close(actual: object, expected: object) -> bool:
    """Equal, except that floats (sums and averages) may differ in rounding."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, float):
        return math.isclose(cast("float", actual), expected, rel_tol=1e-9)
    if isinstance(expected, dict):
        fields, wanted = cast("dict[str, object]", actual), cast("dict[str, object]", expected)
        return fields.keys() == wanted.keys() and all(
            close(fields[name], wanted[name]) for name in wanted
        )
    if isinstance(expected, list):
        items, wanted = cast("list[object]", actual), cast("list[object]", expected)
        return len(items) == len(wanted) and all(
            close(item, want) for item, want in zip(items, wanted, strict=True)
        )
    return actual == expected


def assert_close(actual: object, expected: object) -> None:
    assert close(msgspec.to_builtins(actual), msgspec.to_builtins(expected)), (actual, expected)


class History:
    """A store on one event loop, refilled by each hypothesis example."""

    def __init__(self, runner: asyncio.Runner, store: Store) -> None:
        self.runner = runner
        self.store = store

    def load(self, records: list[RequestRecord], how: Writes) -> None:
        """Write ``records`` (replacing any history) as ``how`` says; the last write of each
        record is the one drawn."""

        async def replace() -> None:
            await self.store.requests.delete_all()
            split = round(how.first_phase * len(records))
            for index, record in enumerate(records[:split]):
                rewritten = index in how.rewritten
                self.store.requests.record(
                    earlier_version(record, how.shift_ms) if rewritten else record
                )
            if how.first_refresh_ms is not None:
                await self.store.analytics.refresh_rollups(how.first_refresh_ms)
            for index, record in enumerate(records):
                if index >= split and index in how.rewritten:
                    self.store.requests.record(earlier_version(record, how.shift_ms))
                if index >= split or index in how.rewritten:
                    self.store.requests.record(record)
            if how.second_refresh_ms is not None:
                await self.store.analytics.refresh_rollups(how.second_refresh_ms)
            await self.store.flush()

        self.runner.run(replace())

    def run(self, query: Awaitable[_T]) -> _T:
        async def wait() -> _T:
            return await query

        return self.runner.run(wait())


@pytest.fixture
def history(store_target: Path | str, key: SecretKey) -> Iterator[History]:
    with asyncio.Runner() as runner:
        store = runner.run(Store.open(store_target, key=key))
        try:
            yield History(runner, store)
        finally:
            runner.run(store.close())


# Property tests: each method against the oracle.


def test_totals_match_the_oracle(history: History) -> None:
    @EXAMPLES
    @given(histories, writes, filters)
    def check(records: list[RequestRecord], how: Writes, where: RequestFilter) -> None:
        history.load(records, how)
        actual = history.run(history.store.analytics.totals(where))
        assert_close(actual, oracle_totals(records, where))

    check()


def test_time_series_match_the_oracle(history: History) -> None:
    @EXAMPLES
    @given(
        histories,
        writes,
        filters,
        st.sampled_from((1, 7_000, 60_000, 300_000, HOUR_MS, 3 * HOUR_MS, DAY_MS, 2 * DAY_MS)),
        st.booleans(),
    )
    def check(
        records: list[RequestRecord],
        how: Writes,
        where: RequestFilter,
        bucket_ms: int,
        by_model: bool,
    ) -> None:
        history.load(records, how)
        actual = history.run(
            history.store.analytics.time_series(where, bucket_ms, by_model=by_model)
        )
        assert_close(actual, oracle_series(records, where, bucket_ms, by_model=by_model))

    check()


def test_groups_match_the_oracle(history: History) -> None:
    @EXAMPLES
    @given(histories, writes, filters, st.sampled_from(DIMENSIONS), st.none() | limits)
    def check(
        records: list[RequestRecord],
        how: Writes,
        where: RequestFilter,
        dimension: Dimension,
        limit: int | None,
    ) -> None:
        history.load(records, how)
        actual = history.run(history.store.analytics.group_by(where, dimension, limit=limit))
        assert_close(actual, oracle_group_by(records, where, dimension, limit))

    check()


def test_recent_errors_match_the_oracle(history: History) -> None:
    @EXAMPLES
    @given(histories, writes, filters, limits)
    def check(records: list[RequestRecord], how: Writes, where: RequestFilter, limit: int) -> None:
        history.load(records, how)
        actual = history.run(history.store.analytics.recent_errors(where, limit))
        assert actual == oracle_recent_errors(records, where, limit)

    check()


def test_request_listings_match_the_oracle(history: History) -> None:
    @EXAMPLES
    @given(
        histories,
        writes,
        filters,
        limits,
        st.one_of(st.none(), st.none(), times),
        st.sampled_from((0, 0, 1, 3)),
    )
    def check(
        records: list[RequestRecord],
        how: Writes,
        where: RequestFilter,
        limit: int,
        before_ms: int | None,
        offset: int,
    ) -> None:
        history.load(records, how)
        actual = history.run(
            history.store.analytics.requests(where, limit, before_ms=before_ms, offset=offset)
        )
        assert actual == oracle_requests(records, where, limit, before_ms, offset)

    check()


def test_latest_account_for_session_matches_the_oracle(history: History) -> None:
    @EXAMPLES
    @given(
        histories,
        writes,
        st.sampled_from((*SESSIONS, "session-unknown")),
        st.sampled_from((None, *KEYS)),
    )
    def check(
        records: list[RequestRecord], how: Writes, session: str, api_key_id: str | None
    ) -> None:
        history.load(records, how)
        actual = history.run(
            history.store.analytics.latest_account_for_session(session, api_key_id=api_key_id)
        )
        assert actual == oracle_latest_account(records, session, api_key_id)

    check()


# Examples.


async def test_an_empty_history_has_zero_totals_and_no_rows(store: Store) -> None:
    everything = RequestFilter()

    totals = await store.analytics.totals(everything)

    assert totals == Totals(
        metrics=Metrics(
            requests=0,
            successful=0,
            input_tokens=0,
            output_tokens=0,
            cache_read_tokens=0,
            cache_write_tokens=0,
            cost_usd=0.0,
            plan_cost_usd=0.0,
            api_cost_usd=0.0,
            avg_response_time_ms=None,
            avg_output_tokens_per_second=None,
        ),
        active_accounts=0,
    )
    assert (totals.metrics.success_rate, totals.metrics.cache_hit_rate) == (0.0, 0.0)
    assert await store.analytics.time_series(everything, HOUR_MS) == []
    assert await store.analytics.group_by(everything, "account") == []
    assert await store.analytics.recent_errors(everything, 10) == []
    assert await store.analytics.requests(everything, 10) == []
    assert await store.analytics.latest_account_for_session("session-1") is None


async def test_a_none_account_selects_the_requests_no_account_served(store: Store) -> None:
    store.requests.record(request("served", account_id="acc-a"))
    store.requests.record(request("unserved", account_id=None, success=False, status_code=503))
    await store.flush()

    unattributed = RequestFilter(account_ids=(None,))
    listed = await store.analytics.requests(unattributed, 10)
    totals = await store.analytics.totals(RequestFilter(account_ids=(None, "acc-a")))
    groups = await store.analytics.group_by(RequestFilter(), "account")

    assert [record.id for record in listed] == ["unserved"]
    assert (totals.metrics.requests, totals.active_accounts) == (2, 1)
    assert [(group.key, group.metrics.requests) for group in groups] == [(None, 1), ("acc-a", 1)]


async def test_the_status_filter_splits_successes_from_failures(store: Store) -> None:
    store.requests.record(request("ok-1"))
    store.requests.record(request("ok-2"))
    store.requests.record(request("failed", success=False, status_code=529))
    await store.flush()

    successes = await store.analytics.totals(RequestFilter(status="success"))
    failures = await store.analytics.totals(RequestFilter(status="error"))

    assert (successes.metrics.requests, successes.metrics.success_rate) == (2, 100.0)
    assert (failures.metrics.requests, failures.metrics.success_rate) == (1, 0.0)


async def test_a_range_includes_its_start_and_excludes_its_end(store: Store) -> None:
    for name, timestamp in (("before", T0 - 1), ("start", T0), ("end", T0 + HOUR_MS)):
        store.requests.record(request(name, timestamp_ms=timestamp))
    await store.flush()

    listed = await store.analytics.requests(RequestFilter(since_ms=T0, until_ms=T0 + HOUR_MS), 10)

    assert [record.id for record in listed] == ["start"]


async def test_buckets_start_at_multiples_of_their_size(store: Store) -> None:
    for name, timestamp in (("a", T0 - 1), ("b", T0), ("c", T0 + HOUR_MS - 1), ("d", -1)):
        store.requests.record(request(name, timestamp_ms=timestamp))
    await store.flush()

    series = await store.analytics.time_series(RequestFilter(), HOUR_MS)

    assert [(point.bucket_start_ms, point.metrics.requests) for point in series] == [
        (-HOUR_MS, 1),
        (T0 - HOUR_MS, 1),
        (T0, 2),
    ]


async def test_a_series_by_model_has_a_point_per_bucket_and_model(store: Store) -> None:
    store.requests.record(request("a", model="sonnet"))
    store.requests.record(request("b", model="opus"))
    store.requests.record(request("c", model="sonnet", timestamp_ms=T0 + HOUR_MS))
    await store.flush()

    series = await store.analytics.time_series(RequestFilter(), HOUR_MS, by_model=True)

    assert [(p.bucket_start_ms, p.model, p.metrics.requests) for p in series] == [
        (T0, "opus", 1),
        (T0, "sonnet", 1),
        (T0 + HOUR_MS, "sonnet", 1),
    ]


async def test_plan_costs_are_split_from_everything_else(store: Store) -> None:
    store.requests.record(request("plan", cost_usd=1.0, billing_type=BillingType.PLAN))
    store.requests.record(request("api", cost_usd=2.0, billing_type=BillingType.API))
    store.requests.record(request("overage", cost_usd=4.0, billing_type=BillingType.OVERAGE))
    store.requests.record(request("unknown", cost_usd=8.0, billing_type=None))
    await store.flush()

    metrics = (await store.analytics.totals(RequestFilter())).metrics

    assert (metrics.cost_usd, metrics.plan_cost_usd, metrics.api_cost_usd) == (15.0, 1.0, 14.0)


def test_derived_rates_come_from_the_sums() -> None:
    metrics = metrics_of(
        [
            request(
                "a",
                usage=TokenUsage(
                    input_tokens=10,
                    output_tokens=5,
                    cache_read_input_tokens=30,
                    cache_write_5m_input_tokens=6,
                    cache_write_1h_input_tokens=4,
                ),
            ),
            request("b", success=False, usage=TokenUsage()),
        ]
    )

    assert metrics.total_tokens == 10 + 5 + 30 + 10
    assert metrics.success_rate == 50.0
    assert metrics.cache_hit_rate == 30 * 100 / (10 + 30 + 10)


async def test_errors_group_by_message_account_and_status_newest_first(store: Store) -> None:
    store.requests.record(request("old", success=False, status_code=529, error_message="busy"))
    store.requests.record(
        request("new", success=False, status_code=529, error_message="busy", timestamp_ms=T0 + 5)
    )
    store.requests.record(
        request("other", success=False, status_code=429, error_message="slow", timestamp_ms=T0 + 1)
    )
    store.requests.record(request("fine", timestamp_ms=T0 + 9))
    await store.flush()

    groups = await store.analytics.recent_errors(RequestFilter(), 10)

    assert groups == [
        ErrorGroup(
            error_message="busy", account_id="acc-1", status_code=529, count=2, last_seen_ms=T0 + 5
        ),
        ErrorGroup(
            error_message="slow", account_id="acc-1", status_code=429, count=1, last_seen_ms=T0 + 1
        ),
    ]


async def test_listing_several_accounts_merges_them_newest_first_and_pages(store: Store) -> None:
    for index in range(6):
        account = ("acc-a", "acc-b", None)[index % 3]
        store.requests.record(request(f"r{index}", account_id=account, timestamp_ms=T0 + index))
    await store.flush()
    where = RequestFilter(account_ids=("acc-b", None))

    first = await store.analytics.requests(where, 2)
    second = await store.analytics.requests(where, 2, before_ms=first[-1].timestamp_ms)

    assert [record.id for record in first] == ["r5", "r4"]
    assert [record.id for record in second] == ["r2", "r1"]


async def test_requests_made_at_the_same_instant_are_listed_by_id(store: Store) -> None:
    for name in ("b", "c", "a"):
        store.requests.record(request(name, timestamp_ms=T0))
    store.requests.record(request("newer", timestamp_ms=T0 + 1))
    await store.flush()

    listed = await store.analytics.requests(RequestFilter(), 3)

    assert [record.id for record in listed] == ["newer", "a", "b"]


async def test_the_session_account_skips_requests_no_account_served(store: Store) -> None:
    store.requests.record(request("a", client_session_id="s", account_id="acc-a"))
    store.requests.record(
        request("b", client_session_id="s", account_id="acc-b", timestamp_ms=T0 + 1)
    )
    store.requests.record(request("c", client_session_id="s", account_id=None, timestamp_ms=T0 + 2))
    await store.flush()

    assert await store.analytics.latest_account_for_session("s") == "acc-b"


async def test_invalid_bucket_sizes_and_limits_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="bucket_ms"):
        await store.analytics.time_series(RequestFilter(), 0)
    with pytest.raises(ValueError, match="limit"):
        await store.analytics.requests(RequestFilter(), -1)


# Plans: each query searches an index instead of reading the whole table.

LAST_DAY = RequestFilter(since_ms=T0 - 24 * HOUR_MS, until_ms=T0)
ROLLED = Coverage(rolled_until_ms=T0 - HOUR_MS)
"""Rolled up to the last hour of ``LAST_DAY``; a day of rollups holds the rest."""
LAST_WEEK = RequestFilter(since_ms=T0 - 7 * DAY_MS + 1, until_ms=T0 + 1)
"""Partial hours at both ends, hours, days, stale hours: a piece of each kind."""
STALE = Coverage(rolled_until_ms=T0, stale_hours=(T0 - 3 * DAY_MS,))


def raw(queries: list[Query]) -> Query:
    (query,) = queries
    return query


PLANS: list[tuple[str, Query, str]] = [
    ("totals over a range", raw(totals_queries(LAST_DAY, NO_ROLLUPS)), "idx_requests_timestamp"),
    (
        "totals for an account",
        raw(totals_queries(msgspec.structs.replace(LAST_DAY, account_ids=("acc-a",)), NO_ROLLUPS)),
        "idx_requests_account_timestamp",
    ),
    (
        "totals for unattributed requests",
        raw(totals_queries(RequestFilter(account_ids=(None,)), NO_ROLLUPS)),
        "idx_requests_account_timestamp",
    ),
    (
        "totals for a model",
        raw(totals_queries(msgspec.structs.replace(LAST_DAY, models=("opus",)), NO_ROLLUPS)),
        "idx_requests_model_timestamp",
    ),
    (
        "totals for API keys",
        raw(
            totals_queries(
                msgspec.structs.replace(LAST_DAY, api_key_ids=("key-1", "key-2")), NO_ROLLUPS
            )
        ),
        "idx_requests_api_key_timestamp",
    ),
    (
        "series over a range",
        raw(series_queries(LAST_DAY, HOUR_MS, NO_ROLLUPS, by_model=True)),
        "idx_requests_timestamp",
    ),
    (
        "groups over a range",
        raw(group_queries(LAST_DAY, "account_model", NO_ROLLUPS)),
        "idx_requests_timestamp",
    ),
    *(
        (f"rolled totals, piece {number}", query, index)
        for queries in [totals_queries(LAST_WEEK, STALE)]
        for number, (query, index) in enumerate(
            zip(queries, [*["idx_requests_timestamp"] * 3, *["PRIMARY KEY"] * 4], strict=True)
        )
    ),
    (
        "rolled hours of an account",
        series_queries(
            msgspec.structs.replace(LAST_DAY, account_ids=("acc-a",)),
            HOUR_MS,
            ROLLED,
            by_model=True,
        )[1],
        "request_rollups USING PRIMARY KEY (period_ms=? AND start_ms>? AND start_ms<?)",
    ),
    (
        "errors for an account",
        errors_query(RequestFilter(account_ids=("acc-a",)), 10),
        "idx_requests_failed",
    ),
    (
        "newest requests",
        requests_query(RequestFilter(), 50, before_ms=None),
        "idx_requests_timestamp",
    ),
    (
        "newest requests of two accounts",
        requests_query(RequestFilter(account_ids=("acc-a", None)), 50, before_ms=T0),
        "idx_requests_account_timestamp",
    ),
    (
        "newest requests of two models",
        requests_query(RequestFilter(models=("opus", "haiku")), 50, before_ms=None),
        "idx_requests_model_timestamp",
    ),
    ("a session's account", session_query("session-1"), "idx_requests_client_session"),
    (
        "a session's account for one key",
        session_query("session-1", "key-1"),
        "idx_requests_client_session",
    ),
]
FULL_SCAN = re.compile(r"^SCAN (TABLE )?requests$")
SORTS_A_SEARCH = "USE TEMP B-TREE FOR ORDER BY"


@pytest.mark.parametrize(
    ("query", "index"), [(query, index) for _, query, index in PLANS], ids=[p[0] for p in PLANS]
)
async def test_queries_search_an_index(
    store: Store, db_path: Path, query: Query, index: str
) -> None:
    sql, params = query

    plan = await asyncio.to_thread(rawdb.query, db_path, f"EXPLAIN QUERY PLAN {sql}", tuple(params))

    details = [step["detail"] for step in plan]
    assert any(index in detail for detail in details), details
    assert not any(FULL_SCAN.match(detail) for detail in details), details


async def test_listing_several_accounts_sorts_no_search_whole(store: Store, db_path: Path) -> None:
    sql, params = requests_query(RequestFilter(account_ids=("a", "b", None)), 50, before_ms=None)

    plan = await asyncio.to_thread(rawdb.query, db_path, f"EXPLAIN QUERY PLAN {sql}", tuple(params))

    # Each account's search comes in time order (only ties are sorted, "RIGHT PART"); what is
    # sorted whole is at most 50 rows per account, read back from its subquery.
    steps: dict[int, list[str]] = {}
    for step in plan:
        steps.setdefault(step["parent"], []).append(step["detail"])
    searches = [group for group in steps.values() if any("requests" in d for d in group)]
    assert len(searches) == 3
    assert all(SORTS_A_SEARCH not in group for group in searches), plan


async def test_an_hourly_series_reads_rolled_hours_in_order_without_sorting(
    store: Store, db_path: Path
) -> None:
    _, hours = series_queries(LAST_DAY, HOUR_MS, ROLLED, by_model=False)
    sql, params = hours

    plan = await asyncio.to_thread(rawdb.query, db_path, f"EXPLAIN QUERY PLAN {sql}", tuple(params))

    details = [step["detail"] for step in plan]
    assert any("request_rollups USING PRIMARY KEY" in detail for detail in details), details
    assert not any("TEMP B-TREE" in detail for detail in details), details


async def test_a_project_filter_counts_only_that_project_rolled_up_or_not(store: Store) -> None:
    store.requests.record(request("alpha-1", project="alpha"))
    store.requests.record(request("alpha-2", project="alpha", timestamp_ms=T0 + HOUR_MS))
    store.requests.record(request("beta", project="beta"))
    store.requests.record(request("none"))
    await store.flush()
    alpha = RequestFilter(projects=("alpha",))

    raw = (await store.analytics.totals(alpha)).metrics.requests
    await store.analytics.refresh_rollups(T0 + 3 * DAY_MS)
    rolled = (await store.analytics.totals(alpha)).metrics.requests
    series = await store.analytics.time_series(alpha, HOUR_MS)
    by_model = await store.analytics.group_by(alpha, "model")
    listed = await store.analytics.requests(alpha, 10)

    assert (raw, rolled) == (2, 2)
    assert [(p.bucket_start_ms, p.metrics.requests) for p in series] == [
        (T0, 1),
        (T0 + HOUR_MS, 1),
    ]
    assert [(g.key, g.metrics.requests) for g in by_model] == [("claude-sonnet-4-5", 2)]
    assert [record.id for record in listed] == ["alpha-2", "alpha-1"]


async def test_requests_without_a_price_are_counted_apart_before_and_after_rollup(
    store: Store,
) -> None:
    store.requests.record(request("priced", cost_usd=2.0))
    store.requests.record(request("unpriced-1", model="house-model", cost_usd=None))
    store.requests.record(request("unpriced-2", model="house-model", cost_usd=None))
    await store.flush()

    raw = (await store.analytics.totals(RequestFilter())).metrics
    await store.analytics.refresh_rollups(T0 + 3 * DAY_MS)
    rolled = (await store.analytics.totals(RequestFilter())).metrics
    by_model = await store.analytics.group_by(RequestFilter(), "model")

    assert (raw.cost_usd, raw.unpriced_requests, raw.requests) == (2.0, 2, 3)
    assert (rolled.cost_usd, rolled.unpriced_requests, rolled.requests) == (2.0, 2, 3)
    assert {g.key: g.metrics.unpriced_requests for g in by_model} == {
        "claude-sonnet-4-5": 0,
        "house-model": 2,
    }
