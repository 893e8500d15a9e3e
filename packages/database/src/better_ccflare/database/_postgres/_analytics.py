"""Analytics queries on PostgreSQL, straight from ``requests``.

There are no rollups here: every total, series and breakdown is one ``GROUP BY`` over the
matching rows, whose sums :mod:`.._sums` turns into answers exactly as on SQLite, so both
backends give the same results (the analytics oracle tests run on both). The filters search the
same ``(column, timestamp)`` indexes as on SQLite. :meth:`PostgresAnalytics.refresh_rollups` has
nothing to do and returns 0. Ordering follows SQLite's: NULL first ascending, text by code point
(the columns are ``COLLATE "C"``).
"""

from __future__ import annotations

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

from ._connection import Params, Reader

__all__ = ["PostgresAnalytics"]

_SUCCEEDED = "COALESCE(success, FALSE)"
_SUMS = ", ".join(
    (
        "COUNT(*) AS requests",
        "SUM(COALESCE(input_tokens, prompt_tokens, 0))::BIGINT AS input_tokens",
        "SUM(COALESCE(output_tokens, completion_tokens, 0))::BIGINT AS output_tokens",
        "SUM(COALESCE(cache_read_input_tokens, 0))::BIGINT AS cache_read_tokens",
        "SUM(COALESCE(cache_creation_input_tokens, 0))::BIGINT AS cache_write_tokens",
        "COALESCE(SUM(cost_usd), 0) AS cost_usd",
        "COUNT(*) - COUNT(cost_usd) AS unpriced_requests",
        "SUM(response_time_ms)::BIGINT AS response_time_ms_sum",
        "COUNT(response_time_ms) AS response_time_ms_count",
        "COALESCE(SUM(output_tokens_per_second), 0) AS output_tokens_per_second_sum",
        "COUNT(output_tokens_per_second) AS output_tokens_per_second_count",
        f"COUNT(*) FILTER (WHERE {_SUCCEEDED}) AS successful",
        "COALESCE(SUM(cost_usd) FILTER (WHERE billing_type = 'plan'), 0) AS plan_cost_usd",
        "COALESCE(SUM(cost_usd) FILTER (WHERE billing_type IS DISTINCT FROM 'plan'), 0) "
        "AS api_cost_usd",
    )
)
"""The sums :data:`~better_ccflare.database._sums.PARTIALS` names, over ``requests`` rows; token
sums read old rows the way :func:`~better_ccflare.database._rows.request_from_row` does."""
_GROUP_KEYS: dict[Dimension, tuple[str, str]] = {
    "model": ("model", "NULL::TEXT"),
    "account": ("account_used", "NULL::TEXT"),
    "api_key": ("api_key_id", "NULL::TEXT"),
    "account_model": ("account_used", "model"),
}


def _conditions(where: RequestFilter, params: Params) -> str:
    """The ``WHERE`` conditions for ``where`` (``TRUE`` when it filters nothing)."""
    conditions: list[str] = []
    if where.since_ms is not None:
        conditions.append(f"timestamp >= {params.add(where.since_ms)}")
    if where.until_ms is not None:
        conditions.append(f"timestamp < {params.add(where.until_ms)}")
    if where.account_ids:
        named = [account for account in where.account_ids if account is not None]
        either = [f"account_used = ANY({params.add(named)}::TEXT[])"] if named else []
        if len(named) < len(where.account_ids):
            either.append("account_used IS NULL")
        conditions.append(f"({' OR '.join(either)})")
    for column, values in (
        ("model", where.models),
        ("api_key_id", where.api_key_ids),
        ("project", where.projects),
    ):
        if values:
            conditions.append(f"{column} = ANY({params.add(list(values))}::TEXT[])")
    if where.status == "success":
        conditions.append(_SUCCEEDED)
    elif where.status == "error":
        conditions.append(f"NOT {_SUCCEEDED}")
    if where.text is not None:
        # ILIKE folds case by the column's collation, "C": ASCII letters only, as on SQLite.
        pattern = params.add(like_pattern(where.text))
        either = [f"{column} ILIKE {pattern} ESCAPE '\\'" for column in TEXT_COLUMNS]
        either.append(f"status_code::TEXT = {params.add(where.text)}")
        if where.text_account_ids:
            named = params.add(list(where.text_account_ids))
            either.append(f"account_used = ANY({named}::TEXT[])")
        conditions.append(f"({' OR '.join(either)})")
    return " AND ".join(conditions) or "TRUE"


class PostgresAnalytics:
    """:class:`~better_ccflare.database.AnalyticsRepository` on PostgreSQL."""

    __slots__ = ("_reader",)

    def __init__(self, reader: Reader) -> None:
        self._reader = reader

    async def totals(self, where: RequestFilter) -> Totals:
        return totals_from(await self._sums(where, "account_used", "NULL::TEXT"))

    async def time_series(
        self, where: RequestFilter, bucket_ms: int, *, by_model: bool = False
    ) -> list[SeriesPoint]:
        check_bucket(bucket_ms)
        # floor(timestamp / bucket) * bucket, also for negative times (% truncates).
        size = int(bucket_ms)
        bucket = f"(timestamp - ((timestamp % {size}) + {size}) % {size})"
        return series_from(await self._sums(where, bucket, "model" if by_model else "NULL::TEXT"))

    async def group_by(
        self, where: RequestFilter, dimension: Dimension, *, limit: int | None = None
    ) -> list[GroupStats]:
        check_limit(limit)
        return groups_from(await self._sums(where, *_GROUP_KEYS[dimension]), limit)

    async def recent_errors(self, where: RequestFilter, limit: int) -> list[ErrorGroup]:
        check_limit(limit)
        params = Params()
        conditions = _conditions(where, params)
        rows = await self._reader.fetch(
            "SELECT error_message, account_used, status_code, COUNT(*) AS count, "  # noqa: S608 (fixed fragments)
            "MAX(timestamp) AS last_seen_ms FROM requests "
            f"WHERE {conditions} AND NOT {_SUCCEEDED} "
            "GROUP BY error_message, account_used, status_code "
            "ORDER BY last_seen_ms DESC, error_message NULLS FIRST, account_used NULLS FIRST, "
            f"status_code NULLS FIRST LIMIT {params.add(limit)}",
            *params.values,
        )
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
        check_limit(limit)
        check_limit(offset)
        params = Params()
        conditions = _conditions(where, params)
        if before_ms is not None:
            conditions += f" AND timestamp < {params.add(before_ms)}"
        rows = await self._reader.fetch(
            f"SELECT * FROM requests WHERE {conditions} "  # noqa: S608 (fixed fragments)
            f"ORDER BY timestamp DESC, id LIMIT {params.add(limit)} OFFSET {params.add(offset)}",
            *params.values,
        )
        return [request_from_row(row) for row in rows]

    async def latest_account_for_session(
        self, client_session_id: str, *, api_key_id: str | None = None
    ) -> str | None:
        if api_key_id is None:
            return await self._reader.fetchval(
                "SELECT account_used FROM requests "
                "WHERE client_session_id = $1 AND account_used IS NOT NULL "
                "ORDER BY timestamp DESC, seq DESC LIMIT 1",
                client_session_id,
            )
        return await self._reader.fetchval(
            "SELECT account_used FROM requests "
            "WHERE client_session_id = $1 AND account_used IS NOT NULL AND api_key_id = $2 "
            "ORDER BY timestamp DESC, seq DESC LIMIT 1",
            client_session_id,
            api_key_id,
        )

    async def refresh_rollups(self, now_ms: int) -> int:
        """Nothing to roll up: every query reads ``requests`` directly."""
        return 0

    async def _sums(self, where: RequestFilter, first_key: str, second_key: str) -> Sums:
        params = Params()
        conditions = _conditions(where, params)
        rows = await self._reader.fetch(
            f"SELECT {first_key} AS k0, {second_key} AS k1, {_SUMS} FROM requests "  # noqa: S608 (fixed fragments)
            f"WHERE {conditions} GROUP BY 1, 2",
            *params.values,
        )
        return add_up(rows)
