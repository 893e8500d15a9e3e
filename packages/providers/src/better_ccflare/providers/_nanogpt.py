"""NanoGPT subscriptions, through NanoGPT's Anthropic-compatible API.

Everything NanoGPT-specific is here: the address (``BETTER_CCFLARE_NANOGPT_BASE_URL`` overrides
it) and the subscription usage endpoint's schema. An account may point at another NanoGPT
deployment with ``custom_endpoint``; the usage endpoint is then read from the same base URL.
Rate limits follow the Anthropic table (:mod:`._anthropic_api`).
"""

from __future__ import annotations

from typing import ClassVar

import httpx2
import msgspec

from better_ccflare.core import Account, ProviderKind, UsageWindow

from ._anthropic_compatible import EndpointProvider, parse_custom_endpoint
from ._contract import require_api_key
from ._endpoint import Endpoint
from ._usage_fetch import decode_usage, get_usage
from ._usage_windows import usage_window

__all__ = ["NANOGPT_API", "NanoGptProvider", "fetch_nanogpt_usage", "parse_nanogpt_usage"]

NANOGPT_API = Endpoint(
    ("BETTER_CCFLARE_NANOGPT_BASE_URL",),
    "https://nano-gpt.com/api",
    "NanoGPT API; its usage endpoint is <base>/subscription/v1/usage.",
)


class NanoGptProvider(EndpointProvider):
    """A NanoGPT API key (``x-api-key``), with daily and monthly usage polling."""

    id: ClassVar[str] = ProviderKind.NANOGPT.value
    display_name: ClassVar[str] = "NanoGPT"
    default_endpoint: ClassVar[Endpoint] = NANOGPT_API

    async def fetch_usage(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> tuple[UsageWindow, ...]:
        api_key = require_api_key(account, account.credentials)
        base_url = parse_custom_endpoint(account).url
        return await fetch_nanogpt_usage(client, api_key=api_key, base_url=base_url)


# --------------------------------------------------------------------------- usage


class _UsagePeriod(msgspec.Struct):
    used: float | None = None
    remaining: float | None = None
    percent_used: float | None = msgspec.field(default=None, name="percentUsed")
    reset_at: int | None = msgspec.field(default=None, name="resetAt")


class _UsageLimits(msgspec.Struct):
    daily: float | None = None
    monthly: float | None = None


class _UsagePayload(msgspec.Struct):
    active: bool | None = None
    limits: _UsageLimits | None = None
    daily: _UsagePeriod | None = None
    monthly: _UsagePeriod | None = None


async def fetch_nanogpt_usage(
    client: httpx2.AsyncClient, *, api_key: str, base_url: str | None = None
) -> tuple[UsageWindow, ...]:
    """Read a NanoGPT subscription's daily and monthly usage.

    Args:
        base_url: The account's custom endpoint, if any (same form as the default,
            ``https://nano-gpt.com/api``); the usage path is appended to it.
    """
    base = (base_url or NANOGPT_API.url()).rstrip("/")
    headers = {"x-api-key": api_key, "accept": "application/json"}
    url = f"{base}/subscription/v1/usage"
    return parse_nanogpt_usage(await get_usage(client, url, headers, provider="NanoGPT"))


def parse_nanogpt_usage(payload: bytes) -> tuple[UsageWindow, ...]:
    """Parse NanoGPT's ``/subscription/v1/usage`` into ``daily`` and ``monthly`` windows.

    Shape: ``{active, limits: {daily, monthly}, daily: {used, remaining, percentUsed, resetAt},
    monthly: {...}}``; ``percentUsed`` is a fraction (0 to 1), ``resetAt`` epoch ms. Without it
    the percentage is ``used`` over the limit (or over ``used + remaining``). An inactive
    subscription (pay-as-you-go) has no windows: the result is empty.
    """
    body = decode_usage(payload, _UsagePayload, provider="NanoGPT")
    if body.active is False:
        return ()
    limits = body.limits or _UsageLimits()
    windows: list[UsageWindow] = []
    for key, window, limit in (
        ("daily", body.daily, limits.daily),
        ("monthly", body.monthly, limits.monthly),
    ):
        if window is None:
            continue
        used = _percent_used(window, limit)
        if used is not None:
            windows.append(usage_window(key, used, window.reset_at))
    return tuple(windows)


def _percent_used(window: _UsagePeriod, limit: float | None) -> float | None:
    if window.percent_used is not None:
        return window.percent_used * 100.0
    if window.used is None:
        return None
    total = limit or ((window.used + window.remaining) if window.remaining is not None else None)
    return window.used / total * 100.0 if total else None
