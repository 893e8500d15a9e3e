"""One account as the management API shows it: live state, usage windows, never a secret.

The account routes return it after every change, and a finished dashboard login returns the
account it added or logged in again, so the shape is built here, once.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from better_ccflare.core import Account, AccountState, ModelMappings

from ._api_context import ManagementContext
from ._times import iso_ms

__all__ = ["AccountResponse", "account_response"]


class UsageWindowResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    key: str
    utilization: float
    resets_at: int | None


class SessionInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    started_at: int | None
    request_count: int


class AccountResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One account without any secret: what ``GET /api/accounts`` lists."""

    id: str
    name: str
    provider: str
    request_count: int
    total_requests: int
    last_used: str | None
    """ISO-8601 UTC, as the reference wrote it; ``lastUsedMs`` is the same time in epoch ms."""
    last_used_ms: int | None
    created: str | None
    """ISO-8601 UTC, as the reference wrote it; ``createdMs`` is the same time in epoch ms."""
    created_ms: int
    paused: bool
    pause_reason: str | None
    requires_reauth: bool
    token_status: Literal["valid", "expired", "api-key", "missing"]
    token_expires_at: int | None
    has_refresh_token: bool
    rate_limit_status: str | None
    rate_limit_reset: int | None
    rate_limit_remaining: int | None
    rate_limited_until: int | None
    rate_limited_reason: str | None
    rate_limited_at: int | None
    session_info: SessionInfo
    priority: int
    auto_fallback_enabled: bool
    auto_refresh_enabled: bool
    auto_pause_on_overage_enabled: bool
    peak_hours_pause_enabled: bool
    custom_endpoint: str | None
    model_mappings: ModelMappings
    billing_type: str | None
    usage_utilization: float | None
    """The representative window's percent used, from the last usage poll."""
    usage_window: str | None
    usage_data: list[UsageWindowResponse]
    usage_fetched_at: int | None
    is_available: bool
    """Whether the proxy would route to the account right now."""
    state: AccountState
    """The account's state in one word; ``credentials_rejected``, ``out_of_credits`` and
    ``requires_reauth`` need an operator (or, for the first two, a probe that passes)."""
    consecutive_failures: int
    """The circuit breaker's streak: timeouts, failed connections, rejections in a row."""


def account_response(ctx: ManagementContext, account: Account) -> AccountResponse:
    now = ctx.clock.now_ms()
    creds = account.credentials
    if creds.access_token is not None:
        expired = creds.expires_at_ms is not None and creds.expires_at_ms <= now
        token_status: Literal["valid", "expired", "api-key", "missing"] = (
            "expired" if expired else "valid"
        )
    else:
        token_status = "api-key" if creds.api_key is not None else "missing"
    entry = ctx.usage.entry(account.id)
    windows = entry.windows if entry is not None else ()
    top = max(windows, key=lambda w: w.utilization, default=None)
    limit = account.rate_limit
    return AccountResponse(
        id=account.id,
        name=account.name,
        provider=account.provider,
        request_count=account.request_count,
        total_requests=account.total_requests,
        last_used=iso_ms(account.last_used_ms),
        last_used_ms=account.last_used_ms,
        created=iso_ms(account.created_at_ms),
        created_ms=account.created_at_ms,
        paused=account.paused,
        pause_reason=account.pause_reason.value if account.pause_reason else None,
        requires_reauth=account.requires_reauth,
        token_status=token_status,
        token_expires_at=creds.expires_at_ms,
        has_refresh_token=creds.refresh_token is not None,
        rate_limit_status=limit.status,
        rate_limit_reset=limit.reset_at_ms,
        rate_limit_remaining=limit.remaining,
        rate_limited_until=limit.limited_until_ms if limit.cooling_down(now) else None,
        rate_limited_reason=limit.reason.value if limit.reason else None,
        rate_limited_at=limit.limited_at_ms,
        session_info=SessionInfo(
            started_at=account.session.started_at_ms, request_count=account.session.request_count
        ),
        priority=account.priority,
        auto_fallback_enabled=account.auto_fallback_enabled,
        auto_refresh_enabled=account.auto_refresh_enabled,
        auto_pause_on_overage_enabled=account.auto_pause_on_overage_enabled,
        peak_hours_pause_enabled=account.peak_hours_pause_enabled,
        custom_endpoint=account.custom_endpoint,
        model_mappings=account.model_mappings,
        billing_type=account.billing_type.value if account.billing_type else None,
        usage_utilization=top.utilization if top is not None else None,
        usage_window=top.key if top is not None else None,
        usage_data=[
            UsageWindowResponse(key=w.key, utilization=w.utilization, resets_at=w.resets_at_ms)
            for w in windows
        ],
        usage_fetched_at=entry.fetched_at_ms if entry is not None else None,
        is_available=account.is_available(now),
        state=account.state(now),
        consecutive_failures=limit.failures,
    )
