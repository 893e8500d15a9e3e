"""NanoGPT subscriptions, through NanoGPT's Anthropic-compatible API.

An account may point at another NanoGPT deployment with ``custom_endpoint``; the usage
endpoint is then read from the same base URL.
"""

from __future__ import annotations

from typing import ClassVar

import httpx2

from better_ccflare.core import Account, ProviderKind, UsageWindow

from ._anthropic_compatible import EndpointProvider, parse_custom_endpoint
from ._contract import require_api_key
from ._endpoints import NANOGPT_API, Endpoint
from ._usage import fetch_nanogpt_usage

__all__ = ["NanoGptProvider"]


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
