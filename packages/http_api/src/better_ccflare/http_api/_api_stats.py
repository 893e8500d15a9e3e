"""``/api/stats`` and ``/api/analytics``: how the pool has been doing, in the reference's shapes.

All numbers come from :class:`~better_ccflare.database.AnalyticsRepository`, so the overview
cards, the analytics page and ``better-ccflare stats`` agree on what a "request" or a "token"
is. Account and API-key filters take names, as the reference's dashboard sends them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import get, post
from litestar.params import QueryParameter

from better_ccflare.core import InvalidInputError
from better_ccflare.database import GroupStats, Metrics, RequestFilter, SeriesPoint

from ._account_lookup import account_names
from ._api_context import Ctx, ManagementContext
from ._api_errors import errors
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


# What the fields of several shapes below mean, said once.
_Requests = Annotated[int, msgspec.Meta(description="Requests")]
_SuccessRate = Annotated[float, msgspec.Meta(description="Percent of requests answered 2xx")]
_ErrorRate = Annotated[float, msgspec.Meta(description="Percent of requests not answered 2xx")]
_Tokens = Annotated[int, msgspec.Meta(description="Input, output and cache tokens together")]
_CostUsd = Annotated[float, msgspec.Meta(description="Cost in US dollars (priced requests only)")]
_PlanCostUsd = Annotated[
    float, msgspec.Meta(description="The part billed to subscriptions (plan), in US dollars")
]
_ApiCostUsd = Annotated[
    float, msgspec.Meta(description="The part billed per token (api, overage), in US dollars")
]
_Unpriced = Annotated[
    int,
    msgspec.Meta(description="Requests whose model has no known price: their cost is unknown"),
]
_AvgResponseTime = Annotated[float, msgspec.Meta(description="Mean response time (ms)")]
_TokensPerSecond = Annotated[
    float, msgspec.Meta(description="Mean output tokens per second of generation")
]
_Model = Annotated[str, msgspec.Meta(description="The model")]
_AccountName = Annotated[
    str, msgspec.Meta(description="The account's name; no_account: no account served them")
]
_ActiveAccounts = Annotated[int, msgspec.Meta(description="Accounts that served requests")]


# --------------------------------------------------------------------------- /api/stats


_RoundedRate = Annotated[int, msgspec.Meta(description="Percent of requests answered 2xx")]


class ModelCount(msgspec.Struct, frozen=True):
    model: _Model
    count: _Requests
    percentage: Annotated[float, msgspec.Meta(description="Percent of all requests")]


class AccountStats(msgspec.Struct, frozen=True, rename="camel"):
    name: _AccountName
    request_count: Annotated[int, msgspec.Meta(description="Requests in the period")]
    success_rate: _RoundedRate
    total_requests: Annotated[int, msgspec.Meta(description="The account's requests ever")]


class RecentError(msgspec.Struct, frozen=True, rename="camel"):
    message: Annotated[str, msgspec.Meta(description="The error")]
    account_name: Annotated[str | None, msgspec.Meta(description="The account it came from")]
    status_code: Annotated[int | None, msgspec.Meta(description="The status the client got")]
    count: Annotated[int, msgspec.Meta(description="How often it happened")]
    last_seen: Annotated[
        str | None, msgspec.Meta(description="When it last happened (ISO-8601 UTC)")
    ]
    last_seen_ms: Annotated[int, msgspec.Meta(description="The same time as lastSeen, in epoch ms")]


class StatsResponse(msgspec.Struct, frozen=True, rename="camel"):
    total_requests: _Requests
    success_rate: _RoundedRate
    active_accounts: _ActiveAccounts
    avg_response_time: _AvgResponseTime
    total_tokens: _Tokens
    total_cost_usd: _CostUsd
    unpriced_requests: _Unpriced
    avg_tokens_per_second: _TokensPerSecond
    top_models: Annotated[
        list[ModelCount], msgspec.Meta(description="The ten most requested models")
    ]
    accounts: Annotated[list[AccountStats], msgspec.Meta(description="Requests per account")]
    recent_errors: Annotated[
        list[RecentError], msgspec.Meta(description="The latest errors, grouped")
    ]


def _display_name(names: dict[str, str], account_id: str | None) -> str:
    """The account's name; its id once it is deleted; ``no_account`` for unattributed rows."""
    return NO_ACCOUNT if account_id is None else names.get(account_id, account_id)


@get(
    "/api/stats",
    tags=["analytics"],
    responses=errors(invalid=True),
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
    """What the dashboard's overview shows: totals and per-account counts over ``since``
    days, the top models, and the errors of the last ``errorsSinceHours``."""
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
                last_seen_ms=e.last_seen_ms,
            )
            for e in errors
        ],
    )


class StatsResetResponse(msgspec.Struct, frozen=True, rename="camel"):
    success: Annotated[bool, msgspec.Meta(description="Always true")]
    deleted_requests: Annotated[int, msgspec.Meta(description="Request records deleted")]


@post(
    "/api/stats/reset",
    tags=["analytics"],
    responses=errors(changes=True),
    summary="Delete every request and zero the accounts' counters",
)
async def reset_stats(ctx: Ctx) -> StatsResetResponse:
    """Deletes the whole request history (and stored payloads); not undoable."""
    deleted = await ctx.store.requests.delete_all()
    await ctx.pool.reload()
    return StatsResetResponse(success=True, deleted_requests=deleted)


# --------------------------------------------------------------------------- /api/analytics


class Meta(msgspec.Struct, frozen=True):
    range: Annotated[str, msgspec.Meta(description="The range asked for")]
    bucket: Annotated[str, msgspec.Meta(description="The width of a time-series bucket")]
    cumulative: Annotated[bool, msgspec.Meta(description="Whether the series are running totals")]


class AnalyticsTotals(msgspec.Struct, frozen=True, rename="camel"):
    requests: _Requests
    success_rate: _SuccessRate
    active_accounts: _ActiveAccounts
    avg_response_time: _AvgResponseTime
    total_tokens: _Tokens
    total_cost_usd: _CostUsd
    plan_cost_usd: _PlanCostUsd
    api_cost_usd: _ApiCostUsd
    unpriced_requests: _Unpriced
    avg_tokens_per_second: _TokensPerSecond


class SeriesEntry(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    ts: Annotated[int, msgspec.Meta(description="The bucket's start (epoch ms)")]
    requests: _Requests
    tokens: _Tokens
    cost_usd: _CostUsd
    plan_cost_usd: _PlanCostUsd
    api_cost_usd: _ApiCostUsd
    success_rate: _SuccessRate
    error_rate: _ErrorRate
    cache_hit_rate: Annotated[
        float, msgspec.Meta(description="Percent of input tokens read from the prompt cache")
    ]
    avg_response_time: _AvgResponseTime
    avg_tokens_per_second: _TokensPerSecond
    model: Annotated[
        str | None, msgspec.Meta(description="The model, with modelBreakdown; else absent")
    ] = None


class TokenBreakdown(msgspec.Struct, frozen=True, rename="camel"):
    input_tokens: Annotated[int, msgspec.Meta(description="Uncached input tokens")]
    output_tokens: Annotated[int, msgspec.Meta(description="Output tokens")]
    cache_read_input_tokens: Annotated[
        int, msgspec.Meta(description="Input tokens read from the prompt cache")
    ]
    cache_creation_input_tokens: Annotated[
        int, msgspec.Meta(description="Input tokens written to the prompt cache")
    ]


class ModelShare(msgspec.Struct, frozen=True):
    model: _Model
    count: _Requests


class AccountPerformance(msgspec.Struct, frozen=True, rename="camel"):
    name: _AccountName
    requests: _Requests
    success_rate: _SuccessRate
    total_tokens: _Tokens
    cost_usd: _CostUsd


class ApiKeyPerformance(msgspec.Struct, frozen=True, rename="camel"):
    id: Annotated[str | None, msgspec.Meta(description="The key's id; null: sent without one")]
    name: Annotated[str, msgspec.Meta(description="The key's name, or 'no key'")]
    requests: _Requests
    success_rate: _SuccessRate
    total_tokens: _Tokens
    cost_usd: _CostUsd


class ModelCost(msgspec.Struct, frozen=True, rename="camel"):
    model: _Model
    cost_usd: _CostUsd
    unpriced_requests: _Unpriced
    requests: _Requests
    total_tokens: _Tokens


class ModelPerformance(msgspec.Struct, frozen=True, rename="camel"):
    model: _Model
    requests: _Requests
    avg_response_time: _AvgResponseTime
    avg_tokens_per_second: _TokensPerSecond
    error_rate: _ErrorRate


class AccountModelUsage(msgspec.Struct, frozen=True, rename="camel"):
    account: _AccountName
    model: _Model
    requests: _Requests
    total_tokens: _Tokens
    cost_usd: _CostUsd


class AnalyticsResponse(msgspec.Struct, frozen=True, rename="camel"):
    meta: Annotated[Meta, msgspec.Meta(description="The range and bucket width")]
    totals: Annotated[AnalyticsTotals, msgspec.Meta(description="Over the whole range")]
    time_series: Annotated[
        list[SeriesEntry], msgspec.Meta(description="Per bucket (and model, with modelBreakdown)")
    ]
    token_breakdown: Annotated[TokenBreakdown, msgspec.Meta(description="Tokens by kind")]
    model_distribution: Annotated[list[ModelShare], msgspec.Meta(description="Requests per model")]
    account_performance: Annotated[
        list[AccountPerformance], msgspec.Meta(description="Per account")
    ]
    api_key_performance: Annotated[
        list[ApiKeyPerformance], msgspec.Meta(description="Per proxy key")
    ]
    cost_by_model: Annotated[
        list[ModelCost], msgspec.Meta(description="Per model, most expensive first")
    ]
    model_performance: Annotated[
        list[ModelPerformance], msgspec.Meta(description="Speed and errors per model")
    ]
    account_model_usage: Annotated[
        list[AccountModelUsage], msgspec.Meta(description="Per account and model (top 100)")
    ]


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
    tags=["analytics"],
    responses=errors(invalid=True),
    summary="Time series and breakdowns over a range, with filters",
)
async def analytics(
    ctx: Ctx,
    *,
    range: Annotated[RangeName, QueryParameter(description="The period to cover")] = "24h",
    accounts: Annotated[
        str | None, QueryParameter(description="Account names, comma-separated")
    ] = None,
    models: Annotated[str | None, QueryParameter(description="Models, comma-separated")] = None,
    api_keys: Annotated[str | None, QueryParameter(name="apiKeys", description="Key names")] = None,
    project: Annotated[
        str | None,
        QueryParameter(description="Projects (x-better-ccflare-project), comma-separated"),
    ] = None,
    status: Annotated[
        Literal["all", "success", "error"],
        QueryParameter(description="Only successful (2xx) or only failed requests"),
    ] = "all",
    mode: Annotated[
        Literal["normal", "cumulative"],
        QueryParameter(description="cumulative: the series are running totals"),
    ] = "normal",
    model_breakdown: Annotated[
        bool, QueryParameter(name="modelBreakdown", description="One series per model")
    ] = False,
) -> AnalyticsResponse:
    """What the analytics page draws. Filters take names, comma-separated; an unknown name
    is a 400 rather than an empty chart."""
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
