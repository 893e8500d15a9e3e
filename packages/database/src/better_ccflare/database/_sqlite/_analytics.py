"""Analytics queries over the ``requests`` table.

Each query is built by a pure function returning the SQL and its parameters, so tests can ask
SQLite for its plan of exactly what runs. The SQL is assembled from fixed fragments only; the
caller's values (times, ids, models, limits, bucket sizes) are always bound as parameters. The
sums read the columns the way :func:`~._requests.request_from_row` does (old rows without the
token breakdown fall back to the reference's totals), so a total equals the sum over the rows
:meth:`SqliteAnalytics.requests` lists.

Totals, series and breakdowns read whole hours and days from the rollups (see :mod:`._rollups`)
and only the rest of a range (its partial first and last hours, hours not rolled up yet, stale
hours) from ``requests``: each piece is one query returning sums per group, and the pieces are
added up here, so averages come from sums and counts and stay exact. Every piece of one call is
read in one read transaction, so a refresh or write committing meanwhile cannot be counted twice
or missed. The request list, error groups and session lookup read ``requests`` only.

Plans (checked with ``EXPLAIN QUERY PLAN`` on a million rows, see docs/performance.md): a time
range or a single filter value is one search of the matching ``(column, timestamp)`` index from
migrations 1 and 4, and a rollup range one search of its primary key.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from functools import partial

import msgspec
from sqlite_utils import Database

from better_ccflare.core import RequestRecord
from better_ccflare.database._analytics import (
    TEXT_COLUMNS,
    Dimension,
    ErrorGroup,
    GroupStats,
    RequestFilter,
    SeriesPoint,
    Totals,
    like_pattern,
)
from better_ccflare.database._rows import request_from_row
from better_ccflare.database._sums import (
    Sums,
    add_up,
    check_bucket,
    check_limit,
    groups_from,
    series_from,
    totals_from,
)

from ._connection import Runner
from ._rollups import (
    RAW_SUMS,
    ROLLUP_SUMS,
    Coverage,
    read_coverage,
    refresh_step,
    split_range,
)
from ._schema import DAY_MS, FAILED, FAILED_REQUESTS_INDEX, HOUR_MS, SUCCEEDED
from ._writer import Writer

__all__ = [
    "Query",
    "SqliteAnalytics",
    "errors_query",
    "group_queries",
    "requests_query",
    "series_queries",
    "session_query",
    "totals_queries",
]

Query = tuple[str, list[object]]
"""SQL and the values for its ``?`` placeholders, in order."""

_RAW_PARTIALS = ", ".join(
    [
        *(f"{sql} AS {name}" for name, sql in RAW_SUMS.items()),
        f"SUM({SUCCEEDED}) AS successful",
        "TOTAL(CASE WHEN billing_type = 'plan' THEN cost_usd END) AS plan_cost_usd",
        "TOTAL(CASE WHEN billing_type = 'plan' THEN NULL ELSE cost_usd END) AS api_cost_usd",
    ]
)
_ROLLUP_PARTIALS = ", ".join(
    [
        *(f"{sql} AS {name}" for name, sql in ROLLUP_SUMS.items()),
        "SUM(CASE WHEN success THEN requests ELSE 0 END) AS successful",
        "TOTAL(CASE WHEN plan THEN cost_usd END) AS plan_cost_usd",
        "TOTAL(CASE WHEN plan THEN NULL ELSE cost_usd END) AS api_cost_usd",
    ]
)
_GROUP_KEYS: dict[Dimension, tuple[str, str]] = {
    "model": ("model", "NULL"),
    "account": ("account_used", "NULL"),
    "api_key": ("api_key_id", "NULL"),
    "account_model": ("account_used", "model"),
}
"""The columns that become ``GroupStats.key`` and ``second_key``, per dimension."""
_BOTH_PERIODS = (HOUR_MS, DAY_MS)
_NEWEST_FIRST = "ORDER BY timestamp DESC, id LIMIT ?"
_MAX_BRANCHES = 64
_END_OF_TIME_MS = 2**62


def filter_sql(where: RequestFilter, time_column: str = "timestamp") -> Query:
    """The ``WHERE`` conditions for ``where`` (``1`` when it filters nothing), and their values.

    They hold for rollup rows too, with ``time_column="start_ms"``.
    """
    conditions: list[str] = []
    params: list[object] = []
    if where.since_ms is not None:
        conditions.append(f"{time_column} >= ?")
        params.append(where.since_ms)
    if where.until_ms is not None:
        conditions.append(f"{time_column} < ?")
        params.append(where.until_ms)
    elif where.since_ms is not None:
        # A range open at the top looks unselective to SQLite's planner, which then walks a
        # whole GROUP BY index (all history) to skip a sort: 90 ms on a million rows for the
        # last hour. A closed range makes it search the time index instead.
        conditions.append(f"{time_column} < ?")
        params.append(_END_OF_TIME_MS)
    if where.account_ids:
        named = [account for account in where.account_ids if account is not None]
        either = [f"account_used IN ({_placeholders(named)})"] if named else []
        if len(named) < len(where.account_ids):
            either.append("account_used IS NULL")
        conditions.append(f"({' OR '.join(either)})")
        params.extend(named)
    for column, values in (
        ("model", where.models),
        ("api_key_id", where.api_key_ids),
        ("project", where.projects),
    ):
        if values:
            conditions.append(f"{column} IN ({_placeholders(values)})")
            params.extend(values)
    if where.status == "success":
        conditions.append(SUCCEEDED)
    elif where.status == "error":
        conditions.append(FAILED)
    if where.text is not None:
        pattern = like_pattern(where.text)
        either = [f"{column} LIKE ? ESCAPE '\\'" for column in TEXT_COLUMNS]
        params.extend([pattern] * len(TEXT_COLUMNS))
        either.append("CAST(status_code AS TEXT) = ?")
        params.append(where.text)
        if where.text_account_ids:
            either.append(f"account_used IN ({_placeholders(where.text_account_ids)})")
            params.extend(where.text_account_ids)
        conditions.append(f"({' OR '.join(either)})")
    return " AND ".join(conditions) or "1", params


Keys = Callable[[str, int | None], tuple[str, str, list[object]]]
"""The two group keys (``k0``, ``k1``) as expressions over a time column, and their values;
given the time column and the rollup period (``None`` for ``requests``)."""


def totals_queries(where: RequestFilter, coverage: Coverage) -> list[Query]:
    """Sums per account: the totals add them up, and count the accounts."""
    return _pieces(
        where, coverage, _BOTH_PERIODS, lambda _time, _period: ("account_used", "NULL", [])
    )


def series_queries(
    where: RequestFilter, bucket_ms: int, coverage: Coverage, *, by_model: bool
) -> list[Query]:
    check_bucket(bucket_ms)
    model = "model" if by_model else "NULL"

    def keys(time: str, period_ms: int | None) -> tuple[str, str, list[object]]:
        if period_ms == bucket_ms:  # the rollup's own order: grouping needs no sort
            return time, model, []
        # floor(time / bucket) * bucket, also for negative times (SQLite's % truncates).
        return f"{time} - (({time} % ?) + ?) % ?", model, [bucket_ms] * 3

    periods = tuple(period for period in _BOTH_PERIODS if bucket_ms % period == 0)
    return _pieces(where, coverage, periods, keys)


def group_queries(where: RequestFilter, dimension: Dimension, coverage: Coverage) -> list[Query]:
    key, second_key = _GROUP_KEYS[dimension]
    return _pieces(where, coverage, _BOTH_PERIODS, lambda _time, _period: (key, second_key, []))


def _pieces(
    where: RequestFilter, coverage: Coverage, periods: tuple[int, ...], keys: Keys
) -> list[Query]:
    """One query per piece of the range: sums per group, from ``requests`` or the rollups
    (never the rollups for a project filter or a search: they carry neither)."""
    if where.projects or where.text is not None:
        periods = ()
    split = split_range(where.since_ms, where.until_ms, coverage, periods)
    pieces = [
        *((None, bounds) for bounds in split.raw),
        *((HOUR_MS, bounds) for bounds in split.hours),
        *((DAY_MS, bounds) for bounds in split.days),
    ]
    queries: list[Query] = []
    for period_ms, (since_ms, until_ms) in pieces:
        piece = msgspec.structs.replace(where, since_ms=since_ms, until_ms=until_ms)
        rolled = period_ms is not None
        table, time = ("request_rollups", "start_ms") if rolled else ("requests", "timestamp")
        first, second, key_params = keys(time, period_ms)
        conditions, params = filter_sql(piece, time)
        if rolled:
            conditions, params = f"period_ms = ? AND {conditions}", [period_ms, *params]
        sql = (
            f"SELECT {first} AS k0, {second} AS k1, "  # noqa: S608 (fixed fragments)
            f"{_ROLLUP_PARTIALS if rolled else _RAW_PARTIALS} FROM {table} "
            f"WHERE {conditions} GROUP BY {_group_by(second)}"
        )
        queries.append((sql, [*key_params, *params]))
    return queries


def _group_by(second_key: str) -> str:
    # Grouping on a constant too would make SQLite sort rows that come in order already.
    return "k0" if second_key == "NULL" else "k0, k1"


def errors_query(where: RequestFilter, limit: int) -> Query:
    check_limit(limit)
    conditions, params = filter_sql(where)
    # Without the hint SQLite prefers a filter's index, which holds the successes too.
    sql = (
        "SELECT error_message, account_used, status_code, COUNT(*) AS count, "  # noqa: S608 (fixed fragments)
        "MAX(timestamp) AS last_seen_ms "
        f"FROM requests INDEXED BY {FAILED_REQUESTS_INDEX.name} "
        f"WHERE {conditions} AND {FAILED} "
        "GROUP BY error_message, account_used, status_code "
        "ORDER BY last_seen_ms DESC, error_message, account_used, status_code LIMIT ?"
    )
    return sql, [*params, limit]


def requests_query(
    where: RequestFilter, limit: int, *, before_ms: int | None, offset: int = 0
) -> Query:
    """The newest ``limit`` rows of each single-valued part of ``where``, merged.

    SQLite reads ``account_used IN (a, b)`` as two index searches whose rows it must then sort to
    list them newest first: all of them, for a LIMIT of 50. Each single-valued part is one search
    already in time order, so taking each part's newest rows and merging those is cheap. Past
    ``_MAX_BRANCHES`` parts the filter is kept whole. With an ``offset`` each part gives its
    newest ``limit + offset`` rows, and the merge skips the first ``offset``.
    """
    check_limit(limit)
    check_limit(offset)
    if before_ms is not None:
        until_ms = before_ms if where.until_ms is None else min(where.until_ms, before_ms)
        where = msgspec.structs.replace(where, until_ms=until_ms)
    accounts = [(value,) for value in dict.fromkeys(where.account_ids)] or [()]
    models = [(value,) for value in dict.fromkeys(where.models)] or [()]
    keys = [(value,) for value in dict.fromkeys(where.api_key_ids)] or [()]
    branches = [
        msgspec.structs.replace(where, account_ids=account, models=model, api_key_ids=key)
        for account, model, key in itertools.product(accounts, models, keys)
    ]
    parts: list[str] = []
    params: list[object] = []
    for branch in branches if len(branches) <= _MAX_BRANCHES else [where]:
        conditions, values = filter_sql(branch)
        parts.append(f"SELECT * FROM (SELECT * FROM requests WHERE {conditions} {_NEWEST_FIRST})")  # noqa: S608 (fixed fragments)
        params += [*values, limit + offset]
    merged = f"SELECT * FROM ({' UNION ALL '.join(parts)}) {_NEWEST_FIRST}"  # noqa: S608 (fixed fragments)
    if offset:
        return f"{merged} OFFSET ?", [*params, limit, offset]
    return merged, [*params, limit]


def session_query(client_session_id: str, api_key_id: str | None = None) -> Query:
    by_key = "" if api_key_id is None else "AND api_key_id = ? "
    sql = (
        "SELECT account_used FROM requests "  # noqa: S608 (fixed fragments)
        f"WHERE client_session_id = ? AND account_used IS NOT NULL {by_key}"
        "ORDER BY timestamp DESC, rowid DESC LIMIT 1"
    )
    return sql, [client_session_id] if api_key_id is None else [client_session_id, api_key_id]


def _placeholders(values: tuple[object, ...] | list[str]) -> str:
    return ", ".join("?" * len(values))


HOURS_PER_REFRESH = 24
"""Hours rolled up per write transaction, so catching up on a long history lets writes in."""


class SqliteAnalytics:
    """:class:`~better_ccflare.database.AnalyticsRepository` on SQLite, on the reader threads."""

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: Runner, writer: Writer) -> None:
        self._reader = reader
        self._writer = writer

    async def totals(self, where: RequestFilter) -> Totals:
        return totals_from(await self._add_up(partial(totals_queries, where)))

    async def time_series(
        self, where: RequestFilter, bucket_ms: int, *, by_model: bool = False
    ) -> list[SeriesPoint]:
        return series_from(
            await self._add_up(
                lambda coverage: series_queries(where, bucket_ms, coverage, by_model=by_model)
            )
        )

    async def group_by(
        self, where: RequestFilter, dimension: Dimension, *, limit: int | None = None
    ) -> list[GroupStats]:
        check_limit(limit)
        sums = await self._add_up(lambda coverage: group_queries(where, dimension, coverage))
        return groups_from(sums, limit)

    async def recent_errors(self, where: RequestFilter, limit: int) -> list[ErrorGroup]:
        rows = await self._rows(errors_query(where, limit))
        return [
            ErrorGroup(
                error_message=row["error_message"],
                account_id=row["account_used"],
                status_code=row["status_code"],
                count=row["count"],
                last_seen_ms=row["last_seen_ms"],
            )
            for row in rows
        ]

    async def requests(
        self, where: RequestFilter, limit: int, *, before_ms: int | None = None, offset: int = 0
    ) -> list[RequestRecord]:
        rows = await self._rows(requests_query(where, limit, before_ms=before_ms, offset=offset))
        return [request_from_row(row) for row in rows]

    async def latest_account_for_session(
        self, client_session_id: str, *, api_key_id: str | None = None
    ) -> str | None:
        rows = await self._rows(session_query(client_session_id, api_key_id))
        return rows[0]["account_used"] if rows else None

    async def refresh_rollups(self, now_ms: int) -> int:
        hours = 0
        while True:
            recomputed, done = await self._writer.submit(
                partial(refresh_step, now_ms=now_ms, max_hours=HOURS_PER_REFRESH),
                label="analytics.refresh_rollups",
            )
            hours += recomputed
            if done:
                return hours

    async def _rows(self, query: Query) -> list[sqlite3.Row]:
        sql, params = query

        def select(db: Database) -> list[sqlite3.Row]:
            return db.conn.execute(sql, params).fetchall()

        return await self._reader.run(select)

    async def _add_up(self, queries: Callable[[Coverage], list[Query]]) -> Sums:
        """Run the pieces ``queries`` makes of the current coverage, in one read transaction."""

        def select(db: Database) -> list[sqlite3.Row]:
            db.conn.execute("BEGIN")
            try:
                rows: list[sqlite3.Row] = []
                for sql, params in queries(read_coverage(db)):
                    rows += db.conn.execute(sql, params).fetchall()
                return rows
            finally:
                db.conn.execute("COMMIT")

        return add_up(await self._reader.run(select))
