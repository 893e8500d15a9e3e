"""A proxy key's limits and use as the management API reads and writes them (camelCase JSON).

The keys routes and the dashboard share these shapes: ``limits`` in a key's info and in the
body that sets them, ``use`` (what the key used against each limit, from the request history,
with the running proxy's in-flight count) in the list.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from better_ccflare.core import KeyLimits
from better_ccflare.proxy import KeyGate
from better_ccflare.proxy.admin import KeyUse

from ._times import iso_ms

__all__ = ["KeyUsageRow", "LimitsBody", "UseInfo", "limits_body", "limits_of", "use_info"]


class LimitsBody(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A key's limits; every field optional (absent or ``null``: no such limit)."""

    rpm: int | None = None
    """Requests per sliding minute."""
    tpm: int | None = None
    """Input, cache-write and output tokens per sliding minute."""
    max_concurrent: int | None = None
    budget_daily_usd: float | None = None
    budget_weekly_usd: float | None = None
    budget_monthly_usd: float | None = None
    models: tuple[str, ...] = ()
    """``fnmatch`` patterns of the models the key may use; empty: any."""
    expires_at: datetime | None = None
    """ISO 8601; UTC when it has no offset."""


class UseInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What a key used (tokens: input, cache writes and output, as ``tpm`` counts them)."""

    requests_last_minute: int
    tokens_last_minute: int
    in_flight: int | None
    """Requests of the key in flight in this server (``null`` when not counted here)."""
    requests_today: int
    tokens_today: int
    spent_today_usd: float
    requests_this_week: int
    tokens_this_week: int
    spent_this_week_usd: float
    requests_this_month: int
    tokens_this_month: int
    spent_this_month_usd: float
    day_resets_at: str | None
    week_resets_at: str | None
    month_resets_at: str | None


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

    id: str
    name: str
    limits: LimitsBody | None
    use: UseInfo
