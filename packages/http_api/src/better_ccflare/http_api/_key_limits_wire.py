"""A proxy key's limits and use as the management API reads and writes them (camelCase JSON).

The keys routes and the dashboard share these shapes: ``limits`` in a key's info and in the
body that sets them, ``use`` (what the key used against each limit, from the request history,
with the running proxy's in-flight count) in the list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

from better_ccflare.core import KeyLimits
from better_ccflare.proxy import KeyGate
from better_ccflare.proxy.admin import KeyUse

from ._times import iso_ms

__all__ = ["KeyUsageRow", "LimitsBody", "UseInfo", "limits_body", "limits_of", "use_info"]


_Count = Annotated[int, msgspec.Meta(description="Requests")]
_TokenCount = Annotated[
    int, msgspec.Meta(description="Input, cache-write and output tokens (as tpm counts them)")
]
_Spent = Annotated[float, msgspec.Meta(description="US dollars spent (priced requests only)")]
_Resets = Annotated[
    str | None, msgspec.Meta(description="When the period starts afresh (ISO-8601 UTC)")
]
_Budget = Annotated[
    float | None, msgspec.Meta(description="US dollars the key may spend in the UTC period")
]


class LimitsBody(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A key's limits; every field optional (absent or ``null``: no such limit)."""

    rpm: Annotated[int | None, msgspec.Meta(description="Requests per sliding minute")] = None
    tpm: Annotated[
        int | None,
        msgspec.Meta(description="Input, cache-write and output tokens per sliding minute"),
    ] = None
    max_concurrent: Annotated[
        int | None, msgspec.Meta(description="Requests in flight at once")
    ] = None
    budget_daily_usd: _Budget = None
    budget_weekly_usd: _Budget = None
    budget_monthly_usd: _Budget = None
    models: Annotated[
        tuple[str, ...],
        msgspec.Meta(description="fnmatch patterns of the models the key may use; empty: any"),
    ] = ()
    expires_at: Annotated[
        datetime | None,
        msgspec.Meta(description="When the key stops working (ISO 8601; UTC without an offset)"),
    ] = None


class UseInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What a key used (tokens: input, cache writes and output, as ``tpm`` counts them)."""

    requests_last_minute: _Count
    tokens_last_minute: _TokenCount
    in_flight: Annotated[
        int | None,
        msgspec.Meta(description="Its requests in flight in this server; null: not counted here"),
    ]
    requests_today: _Count
    tokens_today: _TokenCount
    spent_today_usd: _Spent
    requests_this_week: _Count
    tokens_this_week: _TokenCount
    spent_this_week_usd: _Spent
    requests_this_month: _Count
    tokens_this_month: _TokenCount
    spent_this_month_usd: _Spent
    day_resets_at: _Resets
    week_resets_at: _Resets
    month_resets_at: _Resets


def limits_of(body: LimitsBody) -> KeyLimits:
    expires = body.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return KeyLimits(
        rpm=body.rpm,
        tpm=body.tpm,
        max_concurrent=body.max_concurrent,
        budget_daily_usd=body.budget_daily_usd,
        budget_weekly_usd=body.budget_weekly_usd,
        budget_monthly_usd=body.budget_monthly_usd,
        models=body.models,
        expires_at_ms=int(expires.timestamp() * 1000) if expires is not None else None,
    )


def limits_body(limits: KeyLimits | None) -> LimitsBody | None:
    if limits is None:
        return None
    expires = limits.expires_at_ms
    return LimitsBody(
        rpm=limits.rpm,
        tpm=limits.tpm,
        max_concurrent=limits.max_concurrent,
        budget_daily_usd=limits.budget_daily_usd,
        budget_weekly_usd=limits.budget_weekly_usd,
        budget_monthly_usd=limits.budget_monthly_usd,
        models=limits.models,
        expires_at=datetime.fromtimestamp(expires / 1000, UTC) if expires is not None else None,
    )


def use_info(use: KeyUse, key_id: str, gate: KeyGate | None, now_ms: int) -> UseInfo:
    counted = gate.limiter.usage(key_id, now_ms) if gate is not None else None
    return UseInfo(
        requests_last_minute=use.requests_last_minute,
        tokens_last_minute=use.tokens_last_minute,
        in_flight=counted[2] if counted is not None else None,
        requests_today=use.requests_today,
        tokens_today=use.tokens_today,
        spent_today_usd=use.spent_today_usd,
        requests_this_week=use.requests_this_week,
        tokens_this_week=use.tokens_this_week,
        spent_this_week_usd=use.spent_this_week_usd,
        requests_this_month=use.requests_this_month,
        tokens_this_month=use.tokens_this_month,
        spent_this_month_usd=use.spent_this_month_usd,
        day_resets_at=iso_ms(use.day_resets_at_ms),
        week_resets_at=iso_ms(use.week_resets_at_ms),
        month_resets_at=iso_ms(use.month_resets_at_ms),
    )


class KeyUsageRow(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One key's spend and tokens this UTC day, week and month (``/api/analytics/keys``)."""

    id: Annotated[str, msgspec.Meta(description="The key's id")]
    name: Annotated[str, msgspec.Meta(description="The key's name")]
    limits: Annotated[LimitsBody | None, msgspec.Meta(description="Its limits; null: none")]
    use: Annotated[UseInfo, msgspec.Meta(description="What it used")]
