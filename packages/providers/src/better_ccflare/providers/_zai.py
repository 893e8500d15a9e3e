"""z.ai coding plans, through z.ai's Anthropic-compatible API.

The address is fixed (``BETTER_CCFLARE_ZAI_BASE_URL`` overrides it for tests). z.ai reports an
exhausted plan in the body of a 429, not in headers, so its rate limits are read by
:func:`~._rate_limits.classify_zai_rate_limit`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import httpx2

from better_ccflare.core import Account, ProviderKind, UsageWindow

from ._anthropic_compatible import EndpointProvider
from ._contract import require_api_key
from ._endpoints import ZAI_API, Endpoint
from ._rate_limits import classify_zai_rate_limit
from ._readings import RateLimitInfo
from ._usage import fetch_zai_usage

__all__ = ["ZaiProvider"]


class ZaiProvider(EndpointProvider):
    """A z.ai API key (``x-api-key``), with quota polling."""

    id: ClassVar[str] = ProviderKind.ZAI.value
    display_name: ClassVar[str] = "z.ai"
    default_endpoint: ClassVar[Endpoint] = ZAI_API
    honours_custom_endpoint: ClassVar[bool] = False

    def classify_rate_limit(
        self, *, status: int, headers: Mapping[str, str], body: bytes | None, now_ms: int
    ) -> RateLimitInfo:
        return classify_zai_rate_limit(status=status, headers=headers, body=body, now_ms=now_ms)

    async def fetch_usage(
        self, account: Account, client: httpx2.AsyncClient, now_ms: int
    ) -> tuple[UsageWindow, ...]:
        api_key = require_api_key(account, account.credentials)
        return await fetch_zai_usage(client, api_key=api_key)
