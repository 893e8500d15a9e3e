"""Request history pre-aggregated per hour and per day, so a month of analytics reads thousands
of rows instead of a million.

``request_rollups`` holds, per period (an epoch-aligned hour or UTC day), one row per account,
model, API key, success and plan-or-not, with the sums the analytics need (counts, tokens, cost,
and sums *and* counts of response times and output rates, so averages stay exact). Hours are
rolled up from ``requests``; days from their hours.

``request_rollup_state.rolled_until_ms`` says how far the rollups reach: every hour before it is
rolled up, except the hours listed in ``request_rollup_stale``. Triggers on ``requests`` (see
:data:`~._schema.ROLLUP_TRIGGERS`) list an hour there whenever one of its requests is inserted,
changed or deleted after it was rolled up, and queries read stale hours from ``requests``; so
answers are exact at every moment, whoever wrote what. :func:`refresh_step` recomputes the stale
hours and rolls up the hours completed since, a bounded number of hours per transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlite_utils import Database

from ._schema import DAY_MS, HOUR_MS, ROLLUP_TABLES, ROLLUP_TRIGGERS, SUCCEEDED, floor_sql

__all__ = [
    "NO_ROLLUPS",
    "RAW_SUMS",
    "ROLLUP_SUMS",
    "Coverage",
    "Range",
    "Split",
    "create_rollups",
    "read_coverage",
    "refresh_step",
    "reset_rollups",
    "split_range",
]

_log = logging.getLogger("better_ccflare.database")

Range = tuple[int | None, int | None]
"""``[start, end)`` in epoch ms; ``None`` is unbounded on that side."""

_NEVER = -(2**63)
MAX_PARTS = 48
"""More pieces than this (many scattered stale hours) and a query reads everything raw."""

RAW_SUMS = {
    "requests": "COUNT(*)",
    "input_tokens": "SUM(COALESCE(input_tokens, prompt_tokens, 0))",
    "output_tokens": "SUM(COALESCE(output_tokens, completion_tokens, 0))",
    "cache_read_tokens": "SUM(COALESCE(cache_read_input_tokens, 0))",
    "cache_write_tokens": "SUM(COALESCE(cache_creation_input_tokens, 0))",
    "cost_usd": "TOTAL(cost_usd)",
    "unpriced_requests": "COUNT(*) - COUNT(cost_usd)",
    "response_time_ms_sum": "SUM(response_time_ms)",
    "response_time_ms_count": "COUNT(response_time_ms)",
    "output_tokens_per_second_sum": "TOTAL(output_tokens_per_second)",
    "output_tokens_per_second_count": "COUNT(output_tokens_per_second)",
}
"""Each rollup sum, over ``requests`` rows. The token sums read old rows the way
:func:`~._requests.request_from_row` does."""
ROLLUP_SUMS = {
    name: f"TOTAL({name})"
    if name in ("cost_usd", "output_tokens_per_second_sum")
    else f"SUM({name})"
    for name in RAW_SUMS
}
"""The same sums over rollup rows."""
_GROUP = ("account_used", "model", "api_key_id", "success", "plan")
_COLUMNS = ", ".join(("period_ms", "start_ms", "seq", *_GROUP, *RAW_SUMS))

_HOURS_FROM_REQUESTS = (
    f"INSERT INTO request_rollups ({_COLUMNS}) "  # noqa: S608 (fixed fragments)
    f"SELECT {HOUR_MS}, hour_ms, ROW_NUMBER() OVER (PARTITION BY hour_ms), "
    f"account_used, model, api_key_id, succeeded, plan, {', '.join(RAW_SUMS.values())} "
    f"FROM (SELECT *, {floor_sql('timestamp', HOUR_MS)} AS hour_ms, {SUCCEEDED} AS succeeded, "
    "billing_type IS 'plan' AS plan FROM requests WHERE timestamp >= ? AND timestamp < ?) "
    "GROUP BY hour_ms, account_used, model, api_key_id, succeeded, plan"
)
_DAYS_FROM_HOURS = (
    f"INSERT INTO request_rollups ({_COLUMNS}) "  # noqa: S608 (fixed fragments)
    f"SELECT {DAY_MS}, day_ms, ROW_NUMBER() OVER (PARTITION BY day_ms), "
    f"{', '.join(_GROUP)}, {', '.join(ROLLUP_SUMS.values())} "
    f"FROM (SELECT *, {floor_sql('start_ms', DAY_MS)} AS day_ms FROM request_rollups "
    f"WHERE period_ms = {HOUR_MS} AND start_ms >= ? AND start_ms < ?) "
    "GROUP BY day_ms, account_used, model, api_key_id, success, plan"
)
_DELETE_PERIODS = (
    "DELETE FROM request_rollups WHERE period_ms = ? AND start_ms >= ? AND start_ms < ?"
)


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the rollups hold, as a query reads it (inside the query's read transaction)."""

    rolled_until_ms: int | None
    stale_hours: tuple[int, ...] = ()
    """Ascending."""


NO_ROLLUPS = Coverage(rolled_until_ms=None)


@dataclass(frozen=True, slots=True)
class Split:
    """A time range cut into what is read from ``requests`` and what from the rollups."""

    raw: tuple[Range, ...]
    hours: tuple[Range, ...] = ()
    days: tuple[Range, ...] = ()


def read_coverage(db: Database) -> Coverage:
    row = db.conn.execute("SELECT rolled_until_ms FROM request_rollup_state").fetchone()
    if row is None or row[0] is None:
        return NO_ROLLUPS
    stale = db.conn.execute("SELECT hour_start_ms FROM request_rollup_stale ORDER BY 1")
    return Coverage(rolled_until_ms=row[0], stale_hours=tuple(hour for (hour,) in stale))


def split_range(
    since_ms: int | None, until_ms: int | None, coverage: Coverage, periods: tuple[int, ...]
) -> Split:
    """Cut ``[since_ms, until_ms)`` into raw ranges and whole rolled-up hours and days.

    ``periods`` are the rollup periods the caller can use (``HOUR_MS``, ``DAY_MS``); a day is
    used only when none of its hours is stale. Partial hours at either end, stale hours and
    everything from ``rolled_until_ms`` on are raw.
    """
    everything = Split(raw=((since_ms, until_ms),))
    rolled_until = coverage.rolled_until_ms
    if rolled_until is None or HOUR_MS not in periods:
        return everything
    start = None if since_ms is None else _ceil(since_ms, HOUR_MS)
    end = rolled_until if until_ms is None else min(_floor(until_ms, HOUR_MS), rolled_until)
    if start is not None and start >= end:
        return everything
    raw: list[Range] = []
    if since_ms is not None and start is not None and since_ms < start:
        raw.append((since_ms, start))
    runs: list[Range] = []
    for hour in coverage.stale_hours:
        if (start is None or hour >= start) and hour < end:
            if start is None or hour > start:
                runs.append((start, hour))
            raw.append((hour, hour + HOUR_MS))
            start = hour + HOUR_MS
    if start is None or start < end:
        runs.append((start, end))
    if until_ms is None or end < until_ms:
        raw.append((end, until_ms))
    hours, days = _whole_days(runs) if DAY_MS in periods else (runs, [])
    split = Split(raw=_merged(raw), hours=_merged(hours), days=tuple(days))
    if len(split.raw) + len(split.hours) + len(split.days) > MAX_PARTS:
        return everything
    return split


def _whole_days(runs: list[Range]) -> tuple[list[Range], list[Range]]:
    """The runs of rolled-up hours cut into whole days and the hours around them."""
    hours: list[Range] = []
    days: list[Range] = []
    for start, end in runs:
        assert end is not None
        first_day = None if start is None else _ceil(start, DAY_MS)
        last_day = _floor(end, DAY_MS)
        if first_day is not None and first_day >= last_day:
            hours.append((start, end))
            continue
        days.append((first_day, last_day))
        if start is not None and first_day is not None and start < first_day:
            hours.append((start, first_day))
        if last_day < end:
            hours.append((last_day, end))
    return hours, days


def _merged(ranges: list[Range]) -> tuple[Range, ...]:
    """Disjoint ranges in order, adjacent ones joined."""
    ranges.sort(key=lambda bounds: _NEVER if bounds[0] is None else bounds[0])
    merged: list[Range] = []
    for bounds in ranges:
        if merged and merged[-1][1] == bounds[0]:
            merged[-1] = (merged[-1][0], bounds[1])
        else:
            merged.append(bounds)
    return tuple(merged)


def _floor(value: int, period_ms: int) -> int:
    return value // period_ms * period_ms


def _ceil(value: int, period_ms: int) -> int:
    return -(-value // period_ms) * period_ms


def create_rollups(db: Database) -> None:
    """Migration 0005: the tables and triggers, and the rollups of the history already stored.

    Everything before the hour of the newest request is rolled up (a day at a time, which keeps
    each sort small); the server's refresh job takes it from there.
    """
    for table in ROLLUP_TABLES:
        db.conn.execute(table.create_sql())
    db.conn.execute("INSERT OR IGNORE INTO request_rollup_state (id) VALUES (1)")
    for trigger in ROLLUP_TRIGGERS:
        db.conn.execute(trigger)
    newest = db.conn.execute("SELECT MAX(timestamp) FROM requests").fetchone()[0]
    if newest is None:
        return
    _log.info("Rolling up the request history per hour and day; large histories take a while.")
    while not refresh_step(db, newest, max_hours=24)[1]:
        pass


def reset_rollups(db: Database) -> None:
    """Forget every rollup (before deleting all requests, so no trigger marks anything stale)."""
    db.conn.execute("UPDATE request_rollup_state SET rolled_until_ms = NULL")
    db.conn.execute("DELETE FROM request_rollup_stale")
    db.conn.execute("DELETE FROM request_rollups")


def refresh_step(db: Database, now_ms: int, *, max_hours: int) -> tuple[int, bool]:
    """Recompute the stale hours, then roll up at most ``max_hours`` of the hours completed
    before ``now_ms``; in the caller's write transaction.

    Returns:
        (hours recomputed, whether the rollups now reach the hour of ``now_ms``).
    """
    target = _floor(now_ms, HOUR_MS)
    rolled_until: int | None = db.conn.execute(
        "SELECT rolled_until_ms FROM request_rollup_state"
    ).fetchone()[0]
    stale = [hour for (hour,) in db.conn.execute("SELECT hour_start_ms FROM request_rollup_stale")]
    db.conn.execute("DELETE FROM request_rollup_stale")
    for hour in stale:
        _roll_up_hours(db, hour, hour + HOUR_MS)
    # Hours without requests need no rows: start at the hour of the next request.
    following = db.conn.execute(
        "SELECT MIN(timestamp) FROM requests WHERE timestamp >= ?",
        (_NEVER if rolled_until is None else rolled_until,),
    ).fetchone()[0]
    start = target if following is None else min(_floor(following, HOUR_MS), target)
    if rolled_until is not None:
        start = max(start, rolled_until)
    end = max(start, min(target, start + max_hours * HOUR_MS))
    _roll_up_hours(db, start, end)
    db.conn.execute("UPDATE request_rollup_state SET rolled_until_ms = ?", (end,))
    # The days this step completed, and complete days holding a recomputed stale hour.
    completed_since = start if rolled_until is None else rolled_until
    days = set(range(_floor(completed_since, DAY_MS), _floor(end, DAY_MS), DAY_MS))
    days.update(_floor(hour, DAY_MS) for hour in stale if _floor(hour, DAY_MS) + DAY_MS <= end)
    for day in sorted(days):
        _roll_up_days(db, day, day + DAY_MS)
    return len(stale) + (end - start) // HOUR_MS, end >= target


def _roll_up_hours(db: Database, start_ms: int, end_ms: int) -> None:
    db.conn.execute(_DELETE_PERIODS, (HOUR_MS, start_ms, end_ms))
    db.conn.execute(_HOURS_FROM_REQUESTS, (start_ms, end_ms))


def _roll_up_days(db: Database, start_ms: int, end_ms: int) -> None:
    db.conn.execute(_DELETE_PERIODS, (DAY_MS, start_ms, end_ms))
    db.conn.execute(_DAYS_FROM_HOURS, (start_ms, end_ms))
