"""Analytics queries over the ``requests`` table.

Each query is built by a pure function returning the SQL and its parameters, so tests can ask
SQLite for its plan of exactly what runs. The SQL is assembled from fixed fragments only; the
caller's values (times, ids, models, limits, bucket sizes) are always bound as parameters. The
sums read the columns the way :func:`~._requests.request_from_row` does (old rows without the
token breakdown fall back to the reference's totals), so a total equals the sum over the rows
:meth:`SqliteAnalytics.requests` lists.

Plans (checked with ``EXPLAIN QUERY PLAN`` on a million rows, see docs/performance.md): a time
range or a single filter value is one search of the matching ``(column, timestamp)`` index from
migrations 1 and 4. SQLite has no hash aggregation, so grouping sorts the rows in range; that,
not reading them, is most of a breakdown's cost.
"""

from __future__ import annotations

import itertools
import sqlite3

import msgspec
from sqlite_utils import Database

from better_ccflare.core import RequestRecord
from better_ccflare.database._analytics import (
    Dimension,
    ErrorGroup,
    GroupStats,
    Metrics,
    RequestFilter,
    SeriesPoint,
    Totals,
)

from ._connection import ConnectionThread
from ._requests import request_from_row
from ._schema import FAILED, FAILED_REQUESTS_INDEX

__all__ = [
    "Query",
    "SqliteAnalytics",
    "errors_query",
    "group_query",
    "requests_query",
    "series_query",
    "session_query",
    "totals_query",
]

Query = tuple[str, list[object]]
"""SQL and the values for its ``?`` placeholders, in order."""

_SUCCEEDED = "COALESCE(success, 0) <> 0"
_METRICS = f"""
    COUNT(*) AS requests,
    SUM({_SUCCEEDED}) AS successful,
    SUM(COALESCE(input_tokens, prompt_tokens, 0)) AS input_tokens,
    SUM(COALESCE(output_tokens, completion_tokens, 0)) AS output_tokens,
    SUM(COALESCE(cache_read_input_tokens, 0)) AS cache_read_tokens,
    SUM(COALESCE(cache_creation_input_tokens, 0)) AS cache_write_tokens,
    TOTAL(cost_usd) AS cost_usd,
    TOTAL(CASE WHEN billing_type = 'plan' THEN cost_usd END) AS plan_cost_usd,
    TOTAL(CASE WHEN billing_type = 'plan' THEN NULL ELSE cost_usd END) AS api_cost_usd,
    AVG(response_time_ms) AS avg_response_time_ms,
    AVG(output_tokens_per_second) AS avg_output_tokens_per_second"""
# floor(timestamp / bucket) * bucket, also for negative timestamps (SQLite's % truncates).
_BUCKET = "timestamp - ((timestamp % ?) + ?) % ?"
_GROUP_KEYS: dict[Dimension, tuple[str, str]] = {
    "model": ("model", "NULL"),
    "account": ("account_used", "NULL"),
    "api_key": ("api_key_id", "NULL"),
    "account_model": ("account_used", "model"),
}
"""The columns that become ``GroupStats.key`` and ``second_key``, per dimension."""
_NEWEST_FIRST = "ORDER BY timestamp DESC, id LIMIT ?"
_MAX_BRANCHES = 64


def filter_sql(where: RequestFilter) -> Query:
    """The ``WHERE`` conditions for ``where`` (``1`` when it filters nothing), and their values."""
    conditions: list[str] = []
    params: list[object] = []
    if where.since_ms is not None:
        conditions.append("timestamp >= ?")
        params.append(where.since_ms)
    if where.until_ms is not None:
        conditions.append("timestamp < ?")
        params.append(where.until_ms)
    if where.account_ids:
        named = [account for account in where.account_ids if account is not None]
        either = [f"account_used IN ({_placeholders(named)})"] if named else []
        if len(named) < len(where.account_ids):
            either.append("account_used IS NULL")
        conditions.append(f"({' OR '.join(either)})")
        params.extend(named)
    for column, values in (("model", where.models), ("api_key_id", where.api_key_ids)):
        if values:
            conditions.append(f"{column} IN ({_placeholders(values)})")
            params.extend(values)
    if where.status == "success":
        conditions.append(_SUCCEEDED)
    elif where.status == "error":
        conditions.append(FAILED)
    return " AND ".join(conditions) or "1", params


def totals_query(where: RequestFilter) -> Query:
    conditions, params = filter_sql(where)
    sql = (
        f"SELECT {_METRICS}, COUNT(DISTINCT account_used) AS active_accounts "  # noqa: S608 (fixed fragments)
        f"FROM requests WHERE {conditions}"
    )
    return sql, params


def series_query(where: RequestFilter, bucket_ms: int, *, by_model: bool) -> Query:
    if bucket_ms <= 0:
        raise ValueError(f"bucket_ms must be positive, not {bucket_ms}")
    conditions, params = filter_sql(where)
    model = "model" if by_model else "NULL"
    sql = (
        f"SELECT {_BUCKET} AS bucket_start_ms, {model} AS series_model, {_METRICS} "  # noqa: S608 (fixed fragments)
        f"FROM requests WHERE {conditions} "
        "GROUP BY bucket_start_ms, series_model ORDER BY bucket_start_ms, series_model"
    )
    return sql, [bucket_ms, bucket_ms, bucket_ms, *params]


def group_query(where: RequestFilter, dimension: Dimension, *, limit: int | None) -> Query:
    _check_limit(limit)
    conditions, params = filter_sql(where)
    key, second_key = _GROUP_KEYS[dimension]
    sql = (
        f"SELECT {key} AS group_key, {second_key} AS second_key, {_METRICS} "  # noqa: S608 (fixed fragments)
        f"FROM requests WHERE {conditions} GROUP BY group_key, second_key "
        "ORDER BY requests DESC, group_key, second_key LIMIT ?"
    )
    return sql, [*params, -1 if limit is None else limit]


def errors_query(where: RequestFilter, limit: int) -> Query:
    _check_limit(limit)
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


def requests_query(where: RequestFilter, limit: int, *, before_ms: int | None) -> Query:
    """The newest ``limit`` rows of each single-valued part of ``where``, merged.

    SQLite reads ``account_used IN (a, b)`` as two index searches whose rows it must then sort to
    list them newest first: all of them, for a LIMIT of 50. Each single-valued part is one search
    already in time order, so taking each part's newest rows and merging those is cheap. Past
    ``_MAX_BRANCHES`` parts the filter is kept whole.
    """
    _check_limit(limit)
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
        params += [*values, limit]
    return f"SELECT * FROM ({' UNION ALL '.join(parts)}) {_NEWEST_FIRST}", [*params, limit]  # noqa: S608 (fixed fragments)


def session_query(client_session_id: str) -> Query:
    sql = (
        "SELECT account_used FROM requests "
        "WHERE client_session_id = ? AND account_used IS NOT NULL "
        "ORDER BY timestamp DESC, rowid DESC LIMIT 1"
    )
    return sql, [client_session_id]


def _placeholders(values: tuple[object, ...] | list[str]) -> str:
    return ", ".join("?" * len(values))


def _check_limit(limit: int | None) -> None:
    # SQLite reads a negative LIMIT as "no limit"; a caller's mistake should not mean that.
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")


def _metrics(row: sqlite3.Row) -> Metrics:
    return Metrics(
        requests=row["requests"],
        successful=row["successful"] or 0,
        input_tokens=row["input_tokens"] or 0,
        output_tokens=row["output_tokens"] or 0,
        cache_read_tokens=row["cache_read_tokens"] or 0,
        cache_write_tokens=row["cache_write_tokens"] or 0,
        cost_usd=row["cost_usd"],
        plan_cost_usd=row["plan_cost_usd"],
        api_cost_usd=row["api_cost_usd"],
        avg_response_time_ms=row["avg_response_time_ms"],
        avg_output_tokens_per_second=row["avg_output_tokens_per_second"],
    )


class SqliteAnalytics:
    """:class:`~better_ccflare.database.AnalyticsRepository` on SQLite, on the reader thread."""

    __slots__ = ("_reader",)

    def __init__(self, reader: ConnectionThread) -> None:
        self._reader = reader

    async def totals(self, where: RequestFilter) -> Totals:
        row = (await self._rows(totals_query(where)))[0]
        return Totals(metrics=_metrics(row), active_accounts=row["active_accounts"])

    async def time_series(
        self, where: RequestFilter, bucket_ms: int, *, by_model: bool = False
    ) -> list[SeriesPoint]:
        rows = await self._rows(series_query(where, bucket_ms, by_model=by_model))
        return [
            SeriesPoint(
                bucket_start_ms=row["bucket_start_ms"],
                model=row["series_model"],
                metrics=_metrics(row),
            )
            for row in rows
        ]

    async def group_by(
        self, where: RequestFilter, dimension: Dimension, *, limit: int | None = None
    ) -> list[GroupStats]:
        rows = await self._rows(group_query(where, dimension, limit=limit))
        return [
            GroupStats(key=row["group_key"], second_key=row["second_key"], metrics=_metrics(row))
            for row in rows
        ]

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
        self, where: RequestFilter, limit: int, *, before_ms: int | None = None
    ) -> list[RequestRecord]:
        rows = await self._rows(requests_query(where, limit, before_ms=before_ms))
        return [request_from_row(row) for row in rows]

    async def latest_account_for_session(self, client_session_id: str) -> str | None:
        rows = await self._rows(session_query(client_session_id))
        return rows[0]["account_used"] if rows else None

    async def _rows(self, query: Query) -> list[sqlite3.Row]:
        sql, params = query

        def select(db: Database) -> list[sqlite3.Row]:
            return db.conn.execute(sql, params).fetchall()

        return await self._reader.run(select)
