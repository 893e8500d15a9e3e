"""Rollups of request history: how they are filled, kept current and forgotten.

Whether answers stay exact through every kind of write is checked by the property tests in
test_analytics.py; these examples spell out the upkeep, and the split of a range is checked on
its own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from better_ccflare.core import FakeClock
from better_ccflare.database import RequestFilter, SecretKey, Store
from better_ccflare.database._sqlite._rollups import MAX_PARTS, Coverage, Range, split_range
from better_ccflare.database._sqlite._schema import DAY_MS, HOUR_MS, ROLLUP_TABLES

from . import rawdb
from .builders import T0, request

ROLLUP_ROWS = "SELECT period_ms, start_ms, requests FROM request_rollups ORDER BY 1, 2"
STATE = "SELECT rolled_until_ms FROM request_rollup_state"
STALE = "SELECT hour_start_ms FROM request_rollup_stale"

# SQLite's rollups; PostgreSQL answers from the requests themselves.
pytestmark = pytest.mark.sqlite_only


async def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    return [tuple(row.values()) for row in await asyncio.to_thread(rawdb.query, path, sql)]


async def record(store: Store, *timestamps: int) -> None:
    for number, timestamp in enumerate(timestamps):
        store.requests.record(request(f"r{timestamp}-{number}", timestamp_ms=timestamp))
    await store.flush()


async def test_a_refresh_rolls_up_complete_hours_and_their_complete_days(
    store: Store, db_path: Path
) -> None:
    await record(store, T0 - DAY_MS, T0 - 1, T0 + 5, T0 + HOUR_MS + 5)

    hours = await store.analytics.refresh_rollups(T0 + HOUR_MS + 10)

    assert hours == 25  # from the first request's hour to the current one
    assert await rows(db_path, STATE) == [(T0 + HOUR_MS,)]
    assert await rows(db_path, ROLLUP_ROWS) == [
        (HOUR_MS, T0 - DAY_MS, 1),
        (HOUR_MS, T0 - HOUR_MS, 1),
        (HOUR_MS, T0, 1),
        (DAY_MS, T0 - DAY_MS, 2),
    ]


async def test_a_second_refresh_in_the_same_hour_does_nothing(store: Store) -> None:
    await record(store, T0 - 1)
    await store.analytics.refresh_rollups(T0 + 10)

    assert await store.analytics.refresh_rollups(T0 + 20) == 0


async def test_a_long_catch_up_is_split_into_transactions(store: Store) -> None:
    await record(store, T0, T0 + DAY_MS, T0 + 2 * DAY_MS)
    transactions = store.stats().transactions

    hours = await store.analytics.refresh_rollups(T0 + 3 * DAY_MS)

    assert hours == 72
    assert store.stats().transactions - transactions == 3


async def test_hours_without_requests_are_skipped(store: Store) -> None:
    await record(store, T0)
    await store.analytics.refresh_rollups(T0 + HOUR_MS)
    await record(store, T0 + 100 * DAY_MS)

    hours = await store.analytics.refresh_rollups(T0 + 100 * DAY_MS + HOUR_MS)

    assert hours == 1


async def test_a_change_to_a_rolled_up_hour_marks_it_stale_until_the_next_refresh(
    store: Store, db_path: Path
) -> None:
    await record(store, T0 + 5)
    await store.analytics.refresh_rollups(T0 + DAY_MS)
    store.requests.record(request("late", timestamp_ms=T0 + 7))
    await store.flush()

    assert await rows(db_path, STALE) == [(T0,)]
    assert (await store.analytics.totals(RequestFilter())).metrics.requests == 2
    assert await store.analytics.refresh_rollups(T0 + DAY_MS) == 1
    assert await rows(db_path, STALE) == []
    assert await rows(db_path, ROLLUP_ROWS) == [(HOUR_MS, T0, 2), (DAY_MS, T0, 2)]


async def test_writes_from_another_connection_keep_answers_exact(
    store: Store, db_path: Path
) -> None:
    await record(store, T0 + 5, T0 + 6)
    await store.analytics.refresh_rollups(T0 + DAY_MS)

    await asyncio.to_thread(
        rawdb.execute, db_path, f"DELETE FROM requests WHERE timestamp = {T0 + 5}"
    )

    assert (await store.analytics.totals(RequestFilter())).metrics.requests == 1


async def test_retention_leaves_deleted_hours_stale_and_the_refresh_drops_them(
    store: Store, db_path: Path, clock: FakeClock
) -> None:
    await record(store, T0 + 5, T0 + 91 * DAY_MS)
    await store.analytics.refresh_rollups(T0 + 91 * DAY_MS + HOUR_MS)
    clock.set(T0 + 91 * DAY_MS)

    await store.run_retention(payload_days=1, request_days=90)

    assert (await store.analytics.totals(RequestFilter())).metrics.requests == 1
    await store.analytics.refresh_rollups(T0 + 91 * DAY_MS + HOUR_MS)
    assert await rows(db_path, ROLLUP_ROWS) == [(HOUR_MS, T0 + 91 * DAY_MS, 1)]


async def test_deleting_all_requests_forgets_the_rollups(store: Store, db_path: Path) -> None:
    await record(store, T0 + 5)
    await store.analytics.refresh_rollups(T0 + DAY_MS)

    await store.requests.delete_all()

    assert await rows(db_path, ROLLUP_ROWS) == []
    assert await rows(db_path, STATE) == [(None,)]
    assert await rows(db_path, STALE) == []


async def test_the_migration_rolls_up_the_history_before_the_newest_hour(
    db_path: Path, key: SecretKey
) -> None:
    async with await Store.open(db_path, key=key) as store:
        await record(store, T0 - DAY_MS, T0 + 5, T0 + HOUR_MS + 5)
        before = await store.analytics.totals(RequestFilter())
    drops = "".join(f"DROP TABLE {table.name};" for table in ROLLUP_TABLES) + "".join(
        f"DROP TRIGGER request_rollups_{event};" for event in ("insert", "update", "delete")
    )
    forget = "DELETE FROM _sqlite_migrations WHERE name = '0005_request_rollups';"
    await asyncio.to_thread(rawdb.execute, db_path, drops + forget)

    async with await Store.open(db_path, key=key) as store:
        after = await store.analytics.totals(RequestFilter())

    assert after == before
    assert await rows(db_path, STATE) == [(T0 + HOUR_MS,)]
    assert await rows(db_path, ROLLUP_ROWS) == [
        (HOUR_MS, T0 - DAY_MS, 1),
        (HOUR_MS, T0, 1),
        (DAY_MS, T0 - DAY_MS, 1),
    ]


async def test_an_empty_database_starts_with_nothing_rolled_up(store: Store, db_path: Path) -> None:
    assert await rows(db_path, STATE) == [(None,)]


# Splitting a range: the pieces cover it exactly once, and rollups only where they are valid.

instants = st.integers(T0 - 3 * DAY_MS, T0 + 3 * DAY_MS)


@st.composite
def coverages(draw: st.DrawFn) -> Coverage:
    until = draw(st.none() | instants.map(lambda at: at // HOUR_MS * HOUR_MS))
    if until is None:
        return Coverage(rolled_until_ms=None)
    stale = draw(st.sets(st.integers(until // HOUR_MS - 80, until // HOUR_MS - 1), max_size=30))
    return Coverage(rolled_until_ms=until, stale_hours=tuple(sorted(h * HOUR_MS for h in stale)))


def contains(piece: Range, at: int) -> bool:
    return (piece[0] is None or piece[0] <= at) and (piece[1] is None or at < piece[1])


@given(
    st.none() | instants,
    st.none() | instants,
    coverages(),
    st.sampled_from(((), (HOUR_MS,), (HOUR_MS, DAY_MS))),
    st.lists(instants, min_size=1, max_size=20),
)
def test_a_split_covers_the_range_once_and_rolls_up_only_valid_hours(
    since: int | None,
    until: int | None,
    coverage: Coverage,
    periods: tuple[int, ...],
    probes: list[int],
) -> None:
    split = split_range(since, until, coverage, periods)

    assert len(split.raw) + len(split.hours) + len(split.days) <= MAX_PARTS
    for at in probes:
        holders = [
            kind
            for kind, pieces in (("raw", split.raw), ("hour", split.hours), ("day", split.days))
            for piece in pieces
            if contains(piece, at)
        ]
        assert len(holders) == int(contains((since, until), at)), (at, split)
        hour = at // HOUR_MS * HOUR_MS
        day = at // DAY_MS * DAY_MS
        if holders and holders[0] != "raw":
            assert coverage.rolled_until_ms is not None
            assert hour + HOUR_MS <= coverage.rolled_until_ms
            assert since is None or since <= hour
            assert until is None or hour + HOUR_MS <= until
            assert hour not in coverage.stale_hours
            assert HOUR_MS in periods
        if holders == ["day"]:
            assert DAY_MS in periods
            assert since is None or since <= day
            assert until is None or day + DAY_MS <= until
            assert not any(day <= stale < day + DAY_MS for stale in coverage.stale_hours)
    for piece in (*split.hours, *split.days):
        assert piece[0] is None or piece[0] % HOUR_MS == 0
        assert piece[1] is not None
        assert piece[1] % HOUR_MS == 0
