"""Analytics answers from sums per group, the same for every backend.

A backend's analytics queries return, per group (keys ``k0`` and ``k1``), the sums named in
:data:`PARTIALS`, possibly in several pieces (SQLite reads rolled-up hours and raw rows
separately). Here the pieces are added up and turned into the answer types; averages come from
sums and counts, so they stay exact however a range was cut.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from ._analytics import GroupStats, Metrics, SeriesPoint, Totals
from ._rows import Row

__all__ = [
    "PARTIALS",
    "Sums",
    "add_up",
    "check_bucket",
    "check_limit",
    "groups_from",
    "metrics_from",
    "series_from",
    "totals_from",
]

PARTIALS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "unpriced_requests",
    "response_time_ms_sum",
    "response_time_ms_count",
    "output_tokens_per_second_sum",
    "output_tokens_per_second_count",
    "successful",
    "plan_cost_usd",
    "api_cost_usd",
)
"""What each piece of a query returns per group, besides the group's keys ``k0`` and ``k1``."""

Sums = dict[tuple[object, object], list[float]]
"""Per group (``k0``, ``k1``), the :data:`PARTIALS` added up over every piece."""


def add_up(rows: Iterable[Row]) -> Sums:
    sums: Sums = {}
    for row in rows:
        values = [row[name] or 0 for name in PARTIALS]  # SUM of no response times is NULL
        total = sums.setdefault((row["k0"], row["k1"]), [0] * len(PARTIALS))
        for index, value in enumerate(values):
            total[index] += value
    return sums


def metrics_from(values: Sequence[float]) -> Metrics:
    fields = dict(zip(PARTIALS, values, strict=True))
    response_times = fields["response_time_ms_count"]
    rates = fields["output_tokens_per_second_count"]
    return Metrics(
        requests=int(fields["requests"]),
        successful=int(fields["successful"]),
        input_tokens=int(fields["input_tokens"]),
        output_tokens=int(fields["output_tokens"]),
        cache_read_tokens=int(fields["cache_read_tokens"]),
        cache_write_tokens=int(fields["cache_write_tokens"]),
        cost_usd=float(fields["cost_usd"]),
        unpriced_requests=int(fields["unpriced_requests"]),
        plan_cost_usd=float(fields["plan_cost_usd"]),
        api_cost_usd=float(fields["api_cost_usd"]),
        avg_response_time_ms=(
            fields["response_time_ms_sum"] / response_times if response_times else None
        ),
        avg_output_tokens_per_second=(
            fields["output_tokens_per_second_sum"] / rates if rates else None
        ),
    )


def totals_from(sums: Sums) -> Totals:
    """The groups of ``sums`` are accounts: add them all up, and count the accounts."""
    accounts = {account for account, _ in sums if account is not None}
    values = [sum(column) for column in zip(*sums.values(), strict=True)] or [0] * len(PARTIALS)
    return Totals(metrics=metrics_from(values), active_accounts=len(accounts))


def series_from(sums: Sums) -> list[SeriesPoint]:
    """The groups of ``sums`` are (bucket start, model or ``None``): one point each, in order."""
    return [
        SeriesPoint(
            bucket_start_ms=cast("int", bucket),
            model=cast("str | None", model),
            metrics=metrics_from(sums[bucket, model]),
        )
        for bucket, model in sorted(sums, key=lambda keys: (keys[0], _none_first(keys[1])))
    ]


def groups_from(sums: Sums, limit: int | None) -> list[GroupStats]:
    """The busiest groups first (ties by key, ``None`` first), at most ``limit``."""
    ordered = sorted(
        sums.items(),
        key=lambda item: (-item[1][0], _none_first(item[0][0]), _none_first(item[0][1])),
    )
    return [
        GroupStats(
            key=cast("str | None", key),
            second_key=cast("str | None", second_key),
            metrics=metrics_from(values),
        )
        for (key, second_key), values in ordered[:limit]
    ]


def check_limit(limit: int | None) -> None:
    # SQL reads a negative LIMIT as "no limit" (SQLite) or refuses it; a caller's mistake should
    # get the same clear error from every backend.
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, not {limit}")


def check_bucket(bucket_ms: int) -> None:
    if bucket_ms <= 0:
        raise ValueError(f"bucket_ms must be positive, not {bucket_ms}")


def _none_first(value: object) -> tuple[bool, object]:
    """SQL's ascending order of a key in SQLite: NULL first."""
    return (value is not None, value if value is not None else 0)
