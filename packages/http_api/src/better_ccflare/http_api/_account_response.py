"""One account as the management API shows it: live state, usage windows, never a secret.

The account routes return it after every change, and a finished dashboard login returns the
account it added or logged in again, so the shape is built here, once.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from better_ccflare.core import Account, AccountState, ModelMappings
from better_ccflare.load_balancer import PLAN_PROVIDERS
from better_ccflare.proxy.jobs import AUTO_REFRESH_PROVIDERS

from ._api_context import ManagementContext
from ._times import iso_ms

__all__ = ["AccountResponse", "account_response"]


def _doc(description: str) -> msgspec.Meta:
    return msgspec.Meta(description=description)


class UsageWindowResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    key: Annotated[str, _doc("The window, e.g. five_hour or seven_day")]
    utilization: Annotated[float, _doc("Percent of the window used")]
    resets_at: Annotated[int | None, _doc("When the window resets (epoch ms)")]


class SessionInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    started_at: Annotated[int | None, _doc("When the current session began (epoch ms)")]
    request_count: Annotated[int, _doc("Requests in the current session")]


class AccountResponse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One account without any secret: what ``GET /api/accounts`` lists."""

    id: Annotated[str, _doc("The account's id")]
    name: Annotated[str, _doc("The account's name")]
    provider: Annotated[str, _doc("The provider id (see GET /api/providers)")]
    request_count: Annotated[int, _doc("Requests since the counters were last reset")]
    total_requests: Annotated[int, _doc("Requests ever")]
    last_used: Annotated[str | None, _doc("When it last served a request (ISO-8601 UTC)")]
    last_used_ms: Annotated[int | None, _doc("The same time as lastUsed, in epoch ms")]
    created: Annotated[str | None, _doc("When it was added (ISO-8601 UTC)")]
    created_ms: Annotated[int, _doc("The same time as created, in epoch ms")]
    paused: Annotated[bool, _doc("Whether it is paused")]
    pause_reason: Annotated[str | None, _doc("Why: manual, overage, ...; null when not paused")]
    requires_reauth: Annotated[bool, _doc("Its login is dead: log in again")]
    token_status: Annotated[
        Literal["valid", "expired", "api-key", "missing"],
        _doc("Its OAuth access token's state, api-key for key accounts"),
    ]
    token_expires_at: Annotated[int | None, _doc("When the access token expires (epoch ms)")]
    has_refresh_token: Annotated[bool, _doc("Whether it holds a refresh token")]
    rate_limit_status: Annotated[
        str | None, _doc("The upstream's last unified rate-limit status, e.g. allowed")
    ]
    rate_limit_reset: Annotated[
        int | None, _doc("When the upstream said the limit resets (epoch ms)")
    ]
    rate_limit_remaining: Annotated[int | None, _doc("Requests left, as the upstream said")]
    rate_limited_until: Annotated[
        int | None, _doc("The end of its cooldown (epoch ms); null when not cooling down")
    ]
    rate_limited_reason: Annotated[str | None, _doc("Why its last cooldown began")]
    rate_limited_at: Annotated[int | None, _doc("When its last cooldown began (epoch ms)")]
    session_info: Annotated[SessionInfo, _doc("Its current session (session strategy)")]
    priority: Annotated[int, _doc("0 to 100; lower is preferred")]
    auto_fallback_enabled: Annotated[bool, _doc("See POST .../auto-fallback")]
    auto_refresh_enabled: Annotated[bool, _doc("See POST .../auto-refresh")]
    auto_fallback_applies: Annotated[
        bool,
        _doc(
            "Whether auto-fallback can act on this account: a subscription with usage windows "
            "(the dashboard offers the toggle only then)"
        ),
    ]
    auto_refresh_applies: Annotated[
        bool, _doc("Whether auto-refresh can act on this account (not on API-key providers)")
    ]
    auto_pause_on_overage_enabled: Annotated[bool, _doc("See POST .../auto-pause-on-overage")]
    peak_hours_pause_enabled: Annotated[bool, _doc("See POST .../peak-hours-pause")]
    custom_endpoint: Annotated[str | None, _doc("Its upstream base URL; null: the default")]
    model_mappings: Annotated[
        ModelMappings, _doc("Model or family to the models to use instead, first first")
    ]
    billing_type: Annotated[str | None, _doc("plan or api, when set for the account")]
    usage_utilization: Annotated[
        float | None, _doc("The representative window's percent used, from the last poll")
    ]
    usage_window: Annotated[str | None, _doc("That window's name")]
    usage_data: Annotated[list[UsageWindowResponse], _doc("Every usage window, last poll")]
    usage_fetched_at: Annotated[int | None, _doc("When usage was last polled (epoch ms)")]
    is_available: Annotated[bool, _doc("Whether the proxy would route to it right now")]
    state: Annotated[
        AccountState,
        _doc(
            "Its state in one word; credentials_rejected, out_of_credits and requires_reauth "
            "need an operator (or, for the first two, a probe that passes)"
        ),
    ]
    consecutive_failures: Annotated[
        int,
        _doc("The circuit breaker's streak: timeouts, failed connections, rejections in a row"),
    ]


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
        auto_fallback_applies=account.provider in PLAN_PROVIDERS,
        auto_refresh_applies=account.provider in AUTO_REFRESH_PROVIDERS,
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
