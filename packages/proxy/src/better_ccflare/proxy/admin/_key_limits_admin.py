"""Setting a proxy key's limits, and reading what it has used against them.

The CLI and the management API both set limits through :func:`set_api_key_limits` (which
checks them) and show use through :func:`key_use`, read from the request history so it is the
same whichever process asks; the running proxy's in-flight count is added where it is known.
"""

from __future__ import annotations

import msgspec

from better_ccflare.core import ApiKey, InvalidInputError, KeyLimits, KeyUsageTotals, NotFoundError
from better_ccflare.database import Store
from better_ccflare.proxy._key_limits import periods_at

__all__ = ["KeyUse", "check_limits", "key_use", "set_api_key_limits"]

_MINUTE_MS = 60_000
_MAX_PATTERNS = 50


class KeyUse(msgspec.Struct, frozen=True, kw_only=True):
    """What one key has used, as the request history has it (the limits' own counts: tokens
    are input, cache-write and output tokens)."""

    requests_last_minute: int = 0
    tokens_last_minute: int = 0
    requests_today: int = 0
    tokens_today: int = 0
    spent_today_usd: float = 0.0
    requests_this_week: int = 0
    tokens_this_week: int = 0
    spent_this_week_usd: float = 0.0
    requests_this_month: int = 0
    tokens_this_month: int = 0
    spent_this_month_usd: float = 0.0
    day_resets_at_ms: int
    week_resets_at_ms: int
    month_resets_at_ms: int


def check_limits(limits: KeyLimits) -> KeyLimits:
    """``limits`` if they make sense, else an error naming the field.

    Raises:
        InvalidInputError: a count below 1, a negative budget, an empty or overlong pattern.
    """
    for field, value in (
        ("rpm", limits.rpm),
        ("tpm", limits.tpm),
        ("maxConcurrent", limits.max_concurrent),
    ):
        if value is not None and value < 1:
            raise InvalidInputError(field, "must be at least 1 (leave it out for no limit)")
    for field, budget in (
        ("budgetDailyUsd", limits.budget_daily_usd),
        ("budgetWeeklyUsd", limits.budget_weekly_usd),
        ("budgetMonthlyUsd", limits.budget_monthly_usd),
    ):
        if budget is not None and not budget >= 0:
            raise InvalidInputError(field, "must be a number of US dollars, 0 or more")
    if len(limits.models) > _MAX_PATTERNS or any(
        not p.strip() or len(p) > 200 for p in limits.models
    ):
        raise InvalidInputError(
            "models",
            f"give up to {_MAX_PATTERNS} non-empty model patterns such as claude-sonnet-*",
        )
    return msgspec.structs.replace(limits, models=tuple(p.strip() for p in limits.models))


async def set_api_key_limits(store: Store, id_or_name: str, limits: KeyLimits | None) -> ApiKey:
    """Replace a key's limits (``None`` removes them); returns the key as it is now.

    Raises:
        NotFoundError: no key has that id or name.
        InvalidInputError: the limits make no sense (:func:`check_limits`).
    """
    found = await store.api_keys.get(id_or_name)
    if found is None:
        raise NotFoundError("API key", id_or_name)
    checked = check_limits(limits) if limits is not None else None
    await store.api_keys.set_limits(found.id, checked)
    return msgspec.structs.replace(
        found, limits=None if checked is None or checked.is_empty else checked
    )


async def key_use(store: Store, now_ms: int) -> dict[str, KeyUse]:
    """What every key has used in the last minute and the current UTC day, week and month,
    by key id (a key that sent nothing this month gets zeros)."""
    periods = periods_at(now_ms)
    since = store.api_keys.usage_since
    minute = await since(now_ms - _MINUTE_MS)
    day = await since(periods.day_start_ms)
    week = await since(periods.week_start_ms)
    month = await since(periods.month_start_ms)
    keys = await store.api_keys.list_all()
    uses: dict[str, KeyUse] = {}
    none = KeyUsageTotals()
    for key in keys:
        last, today = minute.get(key.id, none), day.get(key.id, none)
        this_week, this_month = week.get(key.id, none), month.get(key.id, none)
        uses[key.id] = KeyUse(
            requests_last_minute=last.requests,
            tokens_last_minute=last.tokens,
            requests_today=today.requests,
            tokens_today=today.tokens,
            spent_today_usd=today.cost_usd,
            requests_this_week=this_week.requests,
            tokens_this_week=this_week.tokens,
            spent_this_week_usd=this_week.cost_usd,
            requests_this_month=this_month.requests,
            tokens_this_month=this_month.tokens,
            spent_this_month_usd=this_month.cost_usd,
            day_resets_at_ms=periods.day_end_ms,
            week_resets_at_ms=periods.week_end_ms,
            month_resets_at_ms=periods.month_end_ms,
        )
    return uses
