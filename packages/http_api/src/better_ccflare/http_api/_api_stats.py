"""``/api/stats`` and ``/api/analytics``: how the pool has been doing, in the reference's shapes.

All numbers come from :class:`~better_ccflare.database.AnalyticsRepository`, so the overview
cards, the analytics page and ``better-ccflare stats`` agree on what a "request" or a "token"
is. Account and API-key filters take names, as the reference's dashboard sends them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import get, post
from litestar.params import FromQuery, QueryParameter

from better_ccflare.core import InvalidInputError
from better_ccflare.database import GroupStats, Metrics, RequestFilter, SeriesPoint

from ._account_lookup import account_names
from ._api_context import Ctx, ManagementContext
from ._api_errors import ERROR_RESPONSES
from ._times import iso_ms

__all__ = ["STATS_HANDLERS"]

_MINUTE = 60_000
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

RangeName = Literal["1h", "6h", "24h", "7d", "30d"]
_RANGES: dict[str, tuple[int, int, str]] = {
    "1h": (_HOUR, _MINUTE, "1m"),
    "6h": (6 * _HOUR, 5 * _MINUTE, "5m"),
    "24h": (_DAY, _HOUR, "1h"),
    "7d": (7 * _DAY, _HOUR, "1h"),
    "30d": (30 * _DAY, _DAY, "1d"),
}
"""Range name to (span, bucket, bucket name), as the reference buckets them."""

NO_ACCOUNT = "no_account"
"""The account filter's name for requests that no account served."""


def _round(value: float | None, digits: int = 2) -> float:
    return round(value, digits) if value is not None else 0.0


# --------------------------------------------------------------------------- /api/stats


class ModelCount(msgspec.Struct, frozen=True):
    model: str
    count: int
    percentage: float


class AccountStats(msgspec.Struct, frozen=True, rename="camel"):
    name: str
    request_count: int
    success_rate: int
    total_requests: int


class RecentError(msgspec.Struct, frozen=True, rename="camel"):
    message: str
    account_name: str | None
    status_code: int | None
    count: int
    last_seen: str | None


class StatsResponse(msgspec.Struct, frozen=True, rename="camel"):
    total_requests: int
    success_rate: int
    active_accounts: int
    avg_response_time: float
    total_tokens: int
    total_cost_usd: float
    unpriced_requests: int
    """Requests whose model has no known price: their cost is unknown, not in the total."""
    avg_tokens_per_second: float
    top_models: list[ModelCount]
    accounts: list[AccountStats]
    recent_errors: list[RecentError]


def _display_name(names: dict[str, str], account_id: str | None) -> str:
    """The account's name; its id once it is deleted; ``no_account`` for unattributed rows."""
    return NO_ACCOUNT if account_id is None else names.get(account_id, account_id)


@get(
    "/api/stats",
    responses=ERROR_RESPONSES,
    summary="Totals over the last days, top models, per-account counts, errors",
)
async def stats(
    ctx: Ctx,
    *,
    since: Annotated[
        int, QueryParameter(ge=1, le=365, description="Days of history to cover")
    ] = 30,
    errors_since_hours: Annotated[
        int, QueryParameter(name="errorsSinceHours", ge=1, le=24 * 365, description="Errors window")
    ] = 24,
) -> StatsResponse:
    now = ctx.clock.now_ms()
    where = RequestFilter(since_ms=now - since * _DAY)
    totals = await ctx.store.analytics.totals(where)
    models = await ctx.store.analytics.group_by(where, "model", limit=10)
    per_account = await ctx.store.analytics.group_by(where, "account")
    errors = await ctx.store.analytics.recent_errors(
        RequestFilter(since_ms=now - errors_since_hours * _HOUR), 10
    )
    names = account_names(ctx)
    accounts = {a.id: a for a in ctx.pool.accounts()}
    m = totals.metrics
    return StatsResponse(
        total_requests=m.requests,
        success_rate=round(m.success_rate),
        active_accounts=totals.active_accounts,
        avg_response_time=_round(m.avg_response_time_ms),
        total_tokens=m.total_tokens,
        total_cost_usd=round(m.cost_usd, 6),
        unpriced_requests=m.unpriced_requests,
        avg_tokens_per_second=_round(m.avg_output_tokens_per_second),
        top_models=[
            ModelCount(
                model=g.key,
                count=g.metrics.requests,
                percentage=round(g.metrics.requests * 100 / m.requests, 1) if m.requests else 0,
            )
            for g in models
            if g.key is not None
        ],
        accounts=[
            AccountStats(
                name=_display_name(names, g.key),
                request_count=g.metrics.requests,
                success_rate=round(g.metrics.success_rate),
                total_requests=accounts[g.key].total_requests if g.key in accounts else 0,
            )
            for g in per_account
        ],
        recent_errors=[
            RecentError(
                message=e.error_message or f"HTTP {e.status_code}",
                account_name=names.get(e.account_id) if e.account_id else None,
                status_code=e.status_code,
                count=e.count,
                last_seen=iso_ms(e.last_seen_ms),
            )
            for e in errors
        ],
    )


class ResetResponse(msgspec.Struct, frozen=True, rename="camel"):
    success: bool
    deleted_requests: int


@post(
    "/api/stats/reset",
    responses=ERROR_RESPONSES,
    summary="Delete every request and zero the accounts' counters",
)
async def reset_stats(ctx: Ctx) -> ResetResponse:
    deleted = await ctx.store.requests.delete_all()
    await ctx.pool.reload()
    return ResetResponse(success=True, deleted_requests=deleted)


# --------------------------------------------------------------------------- /api/analytics


class Meta(msgspec.Struct, frozen=True):
    range: str
    bucket: str
    cumulative: bool


class AnalyticsTotals(msgspec.Struct, frozen=True, rename="camel"):
    requests: int
    success_rate: float
    active_accounts: int
    avg_response_time: float
    total_tokens: int
    total_cost_usd: float
    plan_cost_usd: float
    api_cost_usd: float
    unpriced_requests: int
    """Requests whose model has no known price: their cost is unknown, not in the totals."""
    avg_tokens_per_second: float


class SeriesEntry(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    ts: int
    requests: int
    tokens: int
    cost_usd: float
    plan_cost_usd: float
    api_cost_usd: float
    success_rate: float
    error_rate: float
    cache_hit_rate: float
    avg_response_time: float
    avg_tokens_per_second: float
    model: str | None = None


class TokenBreakdown(msgspec.Struct, frozen=True, rename="camel"):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int


class ModelShare(msgspec.Struct, frozen=True):
    model: str
    count: int


class AccountPerformance(msgspec.Struct, frozen=True, rename="camel"):
    name: str
    requests: int
    success_rate: float
    total_tokens: int
    cost_usd: float


class ApiKeyPerformance(msgspec.Struct, frozen=True, rename="camel"):
    id: str | None
    name: str
    requests: int
    success_rate: float
    total_tokens: int
    cost_usd: float


class ModelCost(msgspec.Struct, frozen=True, rename="camel"):
    model: str
    cost_usd: float
    unpriced_requests: int
    requests: int
    total_tokens: int


class ModelPerformance(msgspec.Struct, frozen=True, rename="camel"):
    model: str
    requests: int
    avg_response_time: float
    avg_tokens_per_second: float
    error_rate: float


class AccountModelUsage(msgspec.Struct, frozen=True, rename="camel"):
    account: str
    model: str
    requests: int
    total_tokens: int
    cost_usd: float


class AnalyticsResponse(msgspec.Struct, frozen=True, rename="camel"):
    meta: Meta
    totals: AnalyticsTotals
    time_series: list[SeriesEntry]
    token_breakdown: TokenBreakdown
    model_distribution: list[ModelShare]
    account_performance: list[AccountPerformance]
    api_key_performance: list[ApiKeyPerformance]
    cost_by_model: list[ModelCost]
    model_performance: list[ModelPerformance]
    account_model_usage: list[AccountModelUsage]


def _csv(csv: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (csv or "").split(",") if part.strip())


async def _analytics_filter(
    ctx: ManagementContext,
    *,
    since_ms: int,
    accounts: tuple[str, ...],
    models: tuple[str, ...],
    api_keys: tuple[str, ...],
    projects: tuple[str, ...],
    status: Literal["all", "success", "error"],
) -> RequestFilter:
    """Turn the names the dashboard sends into the ids the store filters on.

    An unknown name is an error, not an empty chart: a typo should be visible.
    """
    account_ids: list[str | None] = []
    if accounts:
        by_name = {name: account_id for account_id, name in account_names(ctx).items()}
        for name in accounts:
            if name == NO_ACCOUNT:
                account_ids.append(None)
            elif name in by_name:
                account_ids.append(by_name[name])
            else:
                raise InvalidInputError("accounts", f"no account is named {name!r}")
    key_ids: list[str] = []
    for name in api_keys:
        key = await ctx.store.api_keys.get(name)
        if key is None:
            raise InvalidInputError("apiKeys", f"no API key is named {name!r}")
        key_ids.append(key.id)
    return RequestFilter(
        since_ms=since_ms,
        account_ids=tuple(account_ids),
        models=models,
        api_key_ids=tuple(key_ids),
        projects=projects,
        status=status,
    )


def _series_entry(point: SeriesPoint, m: Metrics) -> SeriesEntry:
    return SeriesEntry(
        ts=point.bucket_start_ms,
        model=point.model,
        requests=m.requests,
        tokens=m.total_tokens,
        cost_usd=round(m.cost_usd, 6),
        plan_cost_usd=round(m.plan_cost_usd, 6),
        api_cost_usd=round(m.api_cost_usd, 6),
        success_rate=round(m.success_rate, 1),
        error_rate=round(100 - m.success_rate, 1) if m.requests else 0.0,
        cache_hit_rate=round(m.cache_hit_rate, 1),
        avg_response_time=_round(m.avg_response_time_ms),
        avg_tokens_per_second=_round(m.avg_output_tokens_per_second),
    )


def _cumulative(points: list[SeriesPoint]) -> list[SeriesEntry]:
    """Running totals per series (per model with the breakdown); rates stay per bucket."""
    running: dict[str | None, SeriesEntry] = {}
    out: list[SeriesEntry] = []
    for point in points:
        entry = _series_entry(point, point.metrics)
        before = running.get(point.model)
        if before is not None:
            entry = msgspec.structs.replace(
                entry,
                requests=before.requests + entry.requests,
                tokens=before.tokens + entry.tokens,
                cost_usd=round(before.cost_usd + entry.cost_usd, 6),
                plan_cost_usd=round(before.plan_cost_usd + entry.plan_cost_usd, 6),
                api_cost_usd=round(before.api_cost_usd + entry.api_cost_usd, 6),
            )
        running[point.model] = entry
        out.append(entry)
    return out


def _named(groups: list[GroupStats], names: dict[str, str]) -> list[tuple[str, Metrics]]:
    return [(_display_name(names, g.key), g.metrics) for g in groups]


@get(
    "/api/analytics",
    responses=ERROR_RESPONSES,
    summary="Time series and breakdowns over a range, with filters",
)
async def analytics(
    ctx: Ctx,
    *,
    range: FromQuery[RangeName] = "24h",
    accounts: Annotated[
        str | None, QueryParameter(description="Account names, comma-separated")
    ] = None,
    models: Annotated[str | None, QueryParameter(description="Models, comma-separated")] = None,
    api_keys: Annotated[str | None, QueryParameter(name="apiKeys", description="Key names")] = None,
    project: Annotated[
        str | None,
        QueryParameter(description="Projects (x-better-ccflare-project), comma-separated"),
    ] = None,
    status: FromQuery[Literal["all", "success", "error"]] = "all",
    mode: FromQuery[Literal["normal", "cumulative"]] = "normal",
    model_breakdown: Annotated[bool, QueryParameter(name="modelBreakdown")] = False,
) -> AnalyticsResponse:
    span, bucket_ms, bucket_name = _RANGES[range]
    now = ctx.clock.now_ms()
    where = await _analytics_filter(
        ctx,
        since_ms=now - span,
        accounts=_csv(accounts),
        models=_csv(models),
        api_keys=_csv(api_keys),
        projects=_csv(project),
        status=status,
    )
    repo = ctx.store.analytics
    totals = await repo.totals(where)
    points = await repo.time_series(where, bucket_ms, by_model=model_breakdown)
    by_model = await repo.group_by(where, "model")
    by_account = await repo.group_by(where, "account")
    by_key = await repo.group_by(where, "api_key")
    by_account_model = await repo.group_by(where, "account_model", limit=100)
    names = account_names(ctx)
    key_names = {k.id: k.name for k in await ctx.store.api_keys.list_all()}
    m = totals.metrics
    series = (
        _cumulative(points)
        if mode == "cumulative"
        else [_series_entry(p, p.metrics) for p in points]
    )
    return AnalyticsResponse(
        meta=Meta(range=range, bucket=bucket_name, cumulative=mode == "cumulative"),
        totals=AnalyticsTotals(
            requests=m.requests,
            success_rate=round(m.success_rate, 1),
            active_accounts=totals.active_accounts,
            avg_response_time=_round(m.avg_response_time_ms),
            total_tokens=m.total_tokens,
            total_cost_usd=round(m.cost_usd, 6),
            plan_cost_usd=round(m.plan_cost_usd, 6),
            api_cost_usd=round(m.api_cost_usd, 6),
            unpriced_requests=m.unpriced_requests,
            avg_tokens_per_second=_round(m.avg_output_tokens_per_second),
        ),
        time_series=series,
        token_breakdown=TokenBreakdown(
            input_tokens=m.input_tokens,
            output_tokens=m.output_tokens,
            cache_read_input_tokens=m.cache_read_tokens,
            cache_creation_input_tokens=m.cache_write_tokens,
        ),
        model_distribution=[
            ModelShare(model=g.key or "unknown", count=g.metrics.requests) for g in by_model
        ],
        account_performance=[
            AccountPerformance(
                name=name,
                requests=gm.requests,
                success_rate=round(gm.success_rate, 1),
                total_tokens=gm.total_tokens,
                cost_usd=round(gm.cost_usd, 6),
            )
            for name, gm in _named(by_account, names)
        ],
        api_key_performance=[
            ApiKeyPerformance(
                id=g.key,
                name=key_names.get(g.key or "", "no key") if g.key else "no key",
                requests=g.metrics.requests,
                success_rate=round(g.metrics.success_rate, 1),
                total_tokens=g.metrics.total_tokens,
                cost_usd=round(g.metrics.cost_usd, 6),
            )
            for g in by_key
        ],
        cost_by_model=sorted(
            (
                ModelCost(
                    model=g.key or "unknown",
                    cost_usd=round(g.metrics.cost_usd, 6),
                    unpriced_requests=g.metrics.unpriced_requests,
                    requests=g.metrics.requests,
                    total_tokens=g.metrics.total_tokens,
                )
                for g in by_model
            ),
            key=lambda c: -c.cost_usd,
        ),
        model_performance=[
            ModelPerformance(
                model=g.key or "unknown",
                requests=g.metrics.requests,
                avg_response_time=_round(g.metrics.avg_response_time_ms),
                avg_tokens_per_second=_round(g.metrics.avg_output_tokens_per_second),
                error_rate=round(100 - g.metrics.success_rate, 1),
            )
            for g in by_model
        ],
        account_model_usage=[
            AccountModelUsage(
                account=_display_name(names, g.key),
                model=g.second_key or "unknown",
                requests=g.metrics.requests,
                total_tokens=g.metrics.total_tokens,
                cost_usd=round(g.metrics.cost_usd, 6),
            )
            for g in by_account_model
        ],
    )


STATS_HANDLERS = [stats, reset_stats, analytics]
