"""Minimax token plans, through Minimax's Anthropic-compatible API at a fixed address."""

from __future__ import annotations

from typing import ClassVar

import httpx2

from better_ccflare.core import Account, ProviderKind, UsageWindow

from ._anthropic_compatible import EndpointProvider
from ._contract import require_api_key
from ._endpoints import MINIMAX_API, Endpoint
from ._usage import fetch_minimax_usage

__all__ = ["MinimaxProvider"]


class MinimaxProvider(EndpointProvider):
    """A Minimax API key (``x-api-key``), with token-plan polling."""

    id: ClassVar[str] = ProviderKind.MINIMAX.value
    display_name: ClassVar[str] = "Minimax"
    default_endpoint: ClassVar[Endpoint] = MINIMAX_API
    honours_custom_endpoint: ClassVar[bool] = False

    async def fetch_usage(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> tuple[UsageWindow, ...]:
        api_key = require_api_key(account, account.credentials)
        return await fetch_minimax_usage(client, api_key=api_key, now_ms=now_ms)
