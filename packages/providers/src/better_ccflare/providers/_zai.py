"""z.ai coding plans, through z.ai's Anthropic-compatible API at a fixed address.

Everything z.ai-specific is here: the addresses (``BETTER_CCFLARE_ZAI_BASE_URL`` and
``BETTER_CCFLARE_ZAI_USAGE_URL`` override them for tests), the quota 429 and the quota endpoint.

Rate limits: z.ai reports an exhausted plan in the body of a 429, not in headers. A 429 whose
JSON body has ``error.code`` (or ``error.type``) ``"1308"`` and a message ending in ``reset at
YYYY-MM-DD HH:MM:SS`` is ACCOUNT_QUOTA with that reset, read as UTC+8 (z.ai's local time);
anything else follows the Anthropic table (:mod:`._anthropic_api`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import ClassVar

import httpx2
import msgspec

from better_ccflare.core import Account, ProviderKind, UsageWindow

from ._account_fields import API_KEY_FIELD, AccountField
from ._anthropic_api import MAX_RESET_AHEAD_MS, clamp_reset_ms, classify_anthropic_rate_limit
from ._anthropic_compatible import EndpointProvider
from ._contract import require_api_key
from ._endpoint import Endpoint
from ._readings import RateLimitInfo, RateLimitKind
from ._usage_fetch import UsageFetchError, decode_usage, get_usage
from ._usage_windows import usage_window

__all__ = [
    "ZAI_API",
    "ZAI_USAGE",
    "ZaiProvider",
    "classify_zai_rate_limit",
    "fetch_zai_usage",
    "parse_zai_usage",
]

ZAI_API = Endpoint(
    ("BETTER_CCFLARE_ZAI_BASE_URL",),
    "https://api.z.ai/api/anthropic",
    "z.ai Anthropic-compatible API.",
)
ZAI_USAGE = Endpoint(
    ("BETTER_CCFLARE_ZAI_USAGE_URL",),
    "https://api.z.ai/api/monitor/usage/quota/limit",
    "z.ai quota endpoint.",
)

_QUOTA_CODE = "1308"
_QUOTA_RESET = re.compile(r"reset at (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})")
_ZAI_TZ = timezone(timedelta(hours=8))


class ZaiProvider(EndpointProvider):
    """A z.ai API key (``x-api-key``), with quota polling."""

    id: ClassVar[str] = ProviderKind.ZAI.value
    display_name: ClassVar[str] = "Z.ai"
    default_endpoint: ClassVar[Endpoint] = ZAI_API
    honours_custom_endpoint: ClassVar[bool] = False
    account_fields: ClassVar[tuple[AccountField, ...]] = (API_KEY_FIELD,)

    def classify_rate_limit(
        self, *, status: int, headers: Mapping[str, str], body: bytes | None, now_ms: int
    ) -> RateLimitInfo:
        return classify_zai_rate_limit(status=status, headers=headers, body=body, now_ms=now_ms)

    async def fetch_usage(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> tuple[UsageWindow, ...]:
        api_key = require_api_key(account, account.credentials)
        return await fetch_zai_usage(client, api_key=api_key)


# --------------------------------------------------------------------------- rate limits


class _QuotaError(msgspec.Struct):
    code: str | int | None = None
    type: str | None = None
    message: str | None = None


class _QuotaErrorBody(msgspec.Struct):
    error: _QuotaError | None = None


_QUOTA_ERROR_DECODER = msgspec.json.Decoder(_QuotaErrorBody)


def classify_zai_rate_limit(
    *, status: int, headers: Mapping[str, str], body: bytes | None = None, now_ms: int
) -> RateLimitInfo:
    """Classify a z.ai response: its quota 429 names the reset in the body, else as Anthropic.

    Args:
        status: HTTP status code.
        headers: Response headers with lower-case names.
        body: The body or a prefix of it (a truncated body is simply not recognised).
        now_ms: The current time.
    """
    if status == 429 and body:
        reset_at_ms = _quota_reset_ms(body)
        if reset_at_ms is not None:
            return RateLimitInfo(
                kind=RateLimitKind.ACCOUNT_QUOTA,
                reset_at_ms=clamp_reset_ms(reset_at_ms, now_ms, MAX_RESET_AHEAD_MS),
            )
    return classify_anthropic_rate_limit(status=status, headers=headers, now_ms=now_ms)


def _quota_reset_ms(body: bytes) -> int | None:
    try:
        error = _QUOTA_ERROR_DECODER.decode(body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if error is None or _QUOTA_CODE not in (str(error.code), error.type):
        return None
    match = _QUOTA_RESET.search(error.message or "")
    if match is None:
        return None
    try:
        local = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return int(local.replace(tzinfo=_ZAI_TZ).timestamp() * 1000)


# --------------------------------------------------------------------------- usage


class _UsageLimit(msgspec.Struct):
    type: str | None = None
    unit: int | None = None
    number: int | None = None
    percentage: float | None = None
    next_reset_time: int | None = msgspec.field(default=None, name="nextResetTime")


class _NamedLimit(msgspec.Struct):
    """The reference implementation's normalised form: ``{percentage, resetAt}``."""

    percentage: float | None = None
    reset_at: int | None = msgspec.field(default=None, name="resetAt")


class _UsageBody(msgspec.Struct):
    limits: list[_UsageLimit] | None = None
    tokens_limit: _NamedLimit | None = None
    tokens_limit_weekly: _NamedLimit | None = None
    time_limit: _NamedLimit | None = None


class _UsageEnvelope(_UsageBody):
    code: int | None = None
    msg: str | None = None
    success: bool | None = None
    data: _UsageBody | None = None


_WEEK_UNIT = 6


async def fetch_zai_usage(client: httpx2.AsyncClient, *, api_key: str) -> tuple[UsageWindow, ...]:
    """Read a z.ai coding plan's quota.

    The key goes in ``Authorization`` without a scheme, as z.ai's own usage plugin sends it,
    and in ``x-api-key``, as the reference sent it; the endpoint accepts either.
    """
    headers = {"authorization": api_key, "x-api-key": api_key, "accept": "application/json"}
    return parse_zai_usage(await get_usage(client, ZAI_USAGE.url(), headers, provider="z.ai"))


def parse_zai_usage(payload: bytes) -> tuple[UsageWindow, ...]:
    """Parse z.ai's ``/api/monitor/usage/quota/limit``.

    The live shape is ``{code, msg, success, data: {limits: [{type, unit, number, percentage,
    nextResetTime}]}}``. A plan can carry several ``TOKENS_LIMIT`` entries (a 5-hour one and,
    with ``unit`` 6, a weekly one): the one resetting soonest is ``tokens_limit``, the weekly one
    ``tokens_limit_weekly``, any other ``tokens_limit_<n>``. ``TIME_LIMIT`` (the monthly MCP tool
    allowance) is ``time_limit``. The reference's normalised ``{tokens_limit, time_limit:
    {percentage, resetAt}}`` is accepted too. z.ai answers auth failures with HTTP 200 and
    ``{"code": 401, "success": false}``, so the envelope is checked as well as the status.
    """
    envelope = decode_usage(payload, _UsageEnvelope, provider="z.ai")
    if envelope.success is False or (envelope.code is not None and envelope.code != 200):
        raise UsageFetchError(
            f"z.ai refused the usage request: {envelope.msg or 'no message'} "
            f"(code {envelope.code}). Check the account's API key.",
            status=envelope.code,
        )
    body = envelope.data or envelope
    windows: list[UsageWindow] = []
    for key in ("tokens_limit", "tokens_limit_weekly", "time_limit"):
        named: _NamedLimit | None = getattr(body, key)
        if named is not None and named.percentage is not None:
            windows.append(usage_window(key, named.percentage, named.reset_at))
    readings = [
        (entry.type, entry.unit, usage_window("", entry.percentage, entry.next_reset_time))
        for entry in body.limits or ()
        if entry.percentage is not None
    ]
    tokens = sorted(
        ((unit, window) for kind, unit, window in readings if kind == "TOKENS_LIMIT"),
        key=lambda reading: (reading[1].resets_at_ms is None, reading[1].resets_at_ms or 0),
    )
    for position, (unit, window) in enumerate(tokens):
        if position == 0:
            key = "tokens_limit"
        elif unit == _WEEK_UNIT:
            key = "tokens_limit_weekly"
        else:
            key = f"tokens_limit_{position + 1}"
        windows.append(msgspec.structs.replace(window, key=key))
    windows.extend(
        msgspec.structs.replace(window, key="time_limit")
        for kind, _, window in readings
        if kind == "TIME_LIMIT"
    )
    if not windows:
        raise UsageFetchError("z.ai's usage response had no quota limits in it.")
    return _unique(windows)


def _unique(windows: Iterable[UsageWindow]) -> tuple[UsageWindow, ...]:
    """The first window of each key (an explicit named form beats the ``limits`` list)."""
    seen: dict[str, UsageWindow] = {}
    for window in windows:
        seen.setdefault(window.key, window)
    return tuple(seen.values())
