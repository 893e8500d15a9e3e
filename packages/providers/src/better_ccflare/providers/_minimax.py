"""Minimax token plans, through Minimax's Anthropic-compatible API at a fixed address.

Everything Minimax-specific is here: the addresses (``BETTER_CCFLARE_MINIMAX_BASE_URL`` and
``BETTER_CCFLARE_MINIMAX_USAGE_URL`` override them) and the token-plan endpoint's schema. Rate
limits follow the Anthropic table (:mod:`._anthropic_api`).
"""

from __future__ import annotations

from typing import ClassVar

import httpx2
import msgspec

from better_ccflare.core import Account, ProviderKind, SystemClock, UsageWindow

from ._account_fields import API_KEY_FIELD, AccountField
from ._anthropic_compatible import EndpointProvider
from ._contract import require_api_key
from ._endpoint import Endpoint
from ._usage_fetch import UsageFetchError, decode_usage, get_usage
from ._usage_windows import epoch_ms

__all__ = [
    "MINIMAX_API",
    "MINIMAX_USAGE",
    "MinimaxProvider",
    "fetch_minimax_usage",
    "parse_minimax_usage",
]

MINIMAX_API = Endpoint(
    ("BETTER_CCFLARE_MINIMAX_BASE_URL",),
    "https://api.minimax.io/anthropic",
    "Minimax Anthropic-compatible API.",
)
MINIMAX_USAGE = Endpoint(
    ("BETTER_CCFLARE_MINIMAX_USAGE_URL",),
    "https://www.minimax.io/v1/token_plan/remains",
    "Minimax token-plan endpoint.",
)


class MinimaxProvider(EndpointProvider):
    """A Minimax API key (``x-api-key``), with token-plan polling."""

    id: ClassVar[str] = ProviderKind.MINIMAX.value
    display_name: ClassVar[str] = "MiniMax"
    default_endpoint: ClassVar[Endpoint] = MINIMAX_API
    honours_custom_endpoint: ClassVar[bool] = False
    account_fields: ClassVar[tuple[AccountField, ...]] = (API_KEY_FIELD,)

    async def fetch_usage(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> tuple[UsageWindow, ...]:
        api_key = require_api_key(account, account.credentials)
        return await fetch_minimax_usage(client, api_key=api_key, now_ms=now_ms)


# --------------------------------------------------------------------------- usage


class _UsageRow(msgspec.Struct):
    model_name: str | None = None
    current_interval_remaining_percent: float | None = None
    current_interval_total_count: float | None = None
    current_interval_usage_count: float | None = None
    end_time: int | None = None
    remains_time: int | None = None
    current_weekly_remaining_percent: float | None = None
    current_weekly_total_count: float | None = None
    current_weekly_usage_count: float | None = None
    weekly_end_time: int | None = None
    weekly_remains_time: int | None = None


class _UsageStatus(msgspec.Struct):
    status_code: int | None = None
    status_msg: str | None = None


class _UsagePayload(msgspec.Struct):
    base_resp: _UsageStatus | None = None
    model_remains: list[_UsageRow] | None = None


async def fetch_minimax_usage(
    client: httpx2.AsyncClient, *, api_key: str, now_ms: int | None = None
) -> tuple[UsageWindow, ...]:
    """Read a Minimax token plan's quota.

    Args:
        now_ms: The time to add ``remains_time`` durations to when a row has no ``end_time``;
            defaults to the system clock.
    """
    headers = {"authorization": f"Bearer {api_key}", "accept": "application/json"}
    payload = await get_usage(client, MINIMAX_USAGE.url(), headers, provider="Minimax")
    return parse_minimax_usage(payload, now_ms=SystemClock().now_ms() if now_ms is None else now_ms)


def parse_minimax_usage(payload: bytes, *, now_ms: int) -> tuple[UsageWindow, ...]:
    """Parse Minimax's ``/v1/token_plan/remains`` (and the older ``coding_plan/remains``).

    Assumed shape: ``{base_resp: {status_code, status_msg}, model_remains: [row]}`` with one
    row per model class. Only the text-inference row counts: ``model_name == "general"``, or
    on the older endpoint the first ``MiniMax-M*`` row; ``video`` and other media pools are
    separate quotas and are never substituted. From that row:

    * ``five_hour`` from ``current_interval_remaining_percent`` (percent *remaining*, so it is
      inverted), else from ``current_interval_total_count`` and
      ``current_interval_usage_count``, which despite its name is the *remaining* count;
    * ``seven_day`` from the ``current_weekly_*`` fields the same way, when present;
    * resets from ``end_time`` / ``weekly_end_time`` (epoch ms), else ``now_ms`` plus
      ``remains_time`` / ``weekly_remains_time`` (ms durations).
    """
    body = decode_usage(payload, _UsagePayload, provider="Minimax")
    status = body.base_resp
    if status is not None and status.status_code not in (None, 0):
        raise UsageFetchError(
            f"Minimax refused the usage request: {status.status_msg or 'no message'} "
            f"(status_code {status.status_code}). Check the account's token plan key.",
            status=status.status_code,
        )
    row = _text_row(body.model_remains or [])
    if row is None:
        raise UsageFetchError("Minimax's usage response had no text-inference quota row.")
    windows: list[UsageWindow] = []
    five_hour = _remaining_to_used(
        row.current_interval_remaining_percent,
        row.current_interval_total_count,
        row.current_interval_usage_count,
    )
    if five_hour is not None:
        reset = _reset_ms(row.end_time, row.remains_time, now_ms)
        windows.append(UsageWindow(key="five_hour", utilization=five_hour, resets_at_ms=reset))
    seven_day = _remaining_to_used(
        row.current_weekly_remaining_percent,
        row.current_weekly_total_count,
        row.current_weekly_usage_count,
    )
    if seven_day is not None:
        reset = _reset_ms(row.weekly_end_time, row.weekly_remains_time, now_ms)
        windows.append(UsageWindow(key="seven_day", utilization=seven_day, resets_at_ms=reset))
    if not windows:
        raise UsageFetchError("Minimax's text-inference row had neither percentages nor counts.")
    return tuple(windows)


def _text_row(rows: list[_UsageRow]) -> _UsageRow | None:
    named = [((row.model_name or "").lower(), row) for row in rows]
    general = next((row for name, row in named if name == "general"), None)
    return general or next((row for name, row in named if name.startswith("minimax-m")), None)


def _remaining_to_used(
    remaining_percent: float | None, total: float | None, remaining: float | None
) -> float | None:
    if remaining_percent is not None:
        return 100.0 - min(max(remaining_percent, 0.0), 100.0)
    if total and remaining is not None:
        return min(max((total - remaining) / total * 100.0, 0.0), 100.0)
    return None


def _reset_ms(end: int | None, remains: int | None, now_ms: int) -> int | None:
    if end:
        return epoch_ms(end)
    if remains is not None and remains >= 0:
        return now_ms + remains
    return None
