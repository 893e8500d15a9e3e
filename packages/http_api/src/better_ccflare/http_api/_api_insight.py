"""Smaller read-mostly endpoints: token health, a session's account, usage history, agents.

``GET /api/sessions/{id}/account`` is what status lines poll to show which account a Claude
Code session is on, and how much of its windows is used; it answers from request history, so
it works for every strategy. It takes Claude Code's own session id (what Claude Code hands its
status-line command) or a whole ``metadata.user_id``. An api-only key may call it, and then
finds only the sessions it made itself: that is all ``better-ccflare statusline`` needs, with
the key Claude Code already holds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from better_ccflare.core import ApiKeyRole, NotFoundError
from better_ccflare.proxy import claude_session_id
from better_ccflare.proxy.admin import TokenHealthReport, TokenHealthStatus, token_health
from better_ccflare.proxy.agents import (
    AgentOrigin,
    Workspace,
    agent_catalog,
    clear_agent_model,
    set_agent_model,
)

from ._account_input import ModelName
from ._api_context import Ctx, ManagementContext
from ._api_errors import ERROR_RESPONSES

__all__ = ["INSIGHT_HANDLERS"]

_DAY = 86_400_000
_USAGE_RANGES = {"1h": _DAY // 24, "6h": _DAY // 4, "24h": _DAY, "7d": 7 * _DAY, "30d": 30 * _DAY}

# --------------------------------------------------------------------------- token health


class TokenHealthSummary(msgspec.Struct, frozen=True, rename="camel"):
    total: int
    healthy: int
    warning: int
    critical: int
    expired: int
    no_refresh_token: int
    requires_reauth: int


class TokenHealthEntry(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    account_id: str
    account_name: str
    provider: str
    status: TokenHealthStatus
    requires_reauth: bool
    issued_at: int | None
    expires_at: int | None
    remaining_ms: int | None


def _entry(report: TokenHealthReport) -> TokenHealthEntry:
    return TokenHealthEntry(
        account_id=report.account_id,
        account_name=report.account_name,
        provider=report.provider,
        status=report.status,
        requires_reauth=report.requires_reauth,
        issued_at=report.issued_at_ms,
        expires_at=report.expires_at_ms,
        remaining_ms=report.remaining_ms,
    )


class TokenHealthData(msgspec.Struct, frozen=True):
    accounts: list[TokenHealthEntry]
    summary: TokenHealthSummary
    timestamp: int


class TokenHealthResponse(msgspec.Struct, frozen=True):
    success: bool
    data: JSONBody[TokenHealthData]


def _reports(ctx: ManagementContext) -> list[TokenHealthReport]:
    now = ctx.clock.now_ms()
    return [token_health(a, now) for a in ctx.pool.accounts()]


@get(
    "/api/token-health",
    responses=ERROR_RESPONSES,
    summary="Refresh-token age of every account, and a summary",
)
async def get_token_health(ctx: Ctx) -> TokenHealthResponse:
    reports = _reports(ctx)

    def count(status: TokenHealthStatus) -> int:
        return sum(r.status is status for r in reports)

    summary = TokenHealthSummary(
        total=len(reports),
        healthy=count(TokenHealthStatus.HEALTHY),
        warning=count(TokenHealthStatus.WARNING),
        critical=count(TokenHealthStatus.CRITICAL),
        expired=count(TokenHealthStatus.EXPIRED),
        no_refresh_token=count(TokenHealthStatus.NO_REFRESH_TOKEN),
        requires_reauth=sum(r.requires_reauth for r in reports),
    )
    return TokenHealthResponse(
        success=True,
        data=TokenHealthData(
            accounts=[_entry(r) for r in reports], summary=summary, timestamp=ctx.clock.now_ms()
        ),
    )


@get(
    "/api/token-health/reauth-needed",
    responses=ERROR_RESPONSES,
    summary="Accounts that need a new login",
)
async def reauth_needed(ctx: Ctx) -> list[TokenHealthEntry]:
    return [
        _entry(r)
        for r in _reports(ctx)
        if r.requires_reauth or r.status in (TokenHealthStatus.EXPIRED, TokenHealthStatus.CRITICAL)
    ]


@get(
    "/api/token-health/account/{name:str}",
    responses=ERROR_RESPONSES,
    summary="One account's refresh-token health",
)
async def account_token_health(ctx: Ctx, name: FromPath[str]) -> TokenHealthEntry:
    for report in _reports(ctx):
        if report.account_name == name:
            return _entry(report)
    raise NotFoundError("account", name)


# --------------------------------------------------------------------------- sessions


class SessionWindow(msgspec.Struct, frozen=True, rename="camel"):
    key: str
    utilization: float
    resets_at: int | None


class SessionAccount(msgspec.Struct, frozen=True):
    id: str
    name: str
    provider: str
    windows: list[SessionWindow]
    """The account's usage windows as last polled; empty while unknown."""


class SessionResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    status: Literal["known", "unknown"]
    account: SessionAccount | None = None


@get(
    "/api/sessions/{session_id:str}/account",
    responses=ERROR_RESPONSES,
    summary="The account serving a client session",
)
async def session_account(
    ctx: Ctx, request: Request[Any, Any, Any], session_id: FromPath[str]
) -> SessionResponse:
    # The guard let the request in; ask again which key it carries (a cached lookup) so an
    # api-only key is shown only its own sessions.
    key = (await ctx.auth.authenticate(request.headers, request.url.path)).key
    own_only = key.id if key is not None and key.role is not ApiKeyRole.ADMIN else None
    wanted = claude_session_id(session_id) or session_id
    analytics = ctx.store.analytics
    account_id = await analytics.latest_account_for_session(wanted, api_key_id=own_only)
    if account_id is None and wanted != session_id:
        # Recorded before sessions were keyed by Claude Code's session id: the whole user_id.
        account_id = await analytics.latest_account_for_session(session_id, api_key_id=own_only)
    account = ctx.pool.get(account_id) if account_id is not None else None
    if account is None:
        return SessionResponse(status="unknown")
    windows = [
        SessionWindow(key=w.key, utilization=w.utilization, resets_at=w.resets_at_ms)
        for w in ctx.usage.windows(account.id)
    ]
    return SessionResponse(
        status="known",
        account=SessionAccount(
            id=account.id, name=account.name, provider=account.provider, windows=windows
        ),
    )


# --------------------------------------------------------------------------- usage history


class UsagePoint(msgspec.Struct, frozen=True, rename="camel"):
    timestamp: int
    window: str
    utilization: float
    resets_at: int | None


@get(
    "/api/usage-history", responses=ERROR_RESPONSES, summary="An account's usage windows over time"
)
async def usage_history(
    ctx: Ctx,
    *,
    account: Annotated[str, QueryParameter(description="Account id")],
    range: FromQuery[Literal["1h", "6h", "24h", "7d", "30d"]] = "24h",
    window: Annotated[
        str | None, QueryParameter(description="Only this window, e.g. five_hour")
    ] = None,
) -> list[UsagePoint]:
    if await ctx.store.accounts.get(account) is None:
        raise NotFoundError("account", account)
    since = ctx.clock.now_ms() - _USAGE_RANGES[range]
    snapshots = await ctx.store.usage.series(account, since, window)
    return [
        UsagePoint(
            timestamp=s.timestamp_ms,
            window=w.key,
            utilization=w.utilization,
            resets_at=w.resets_at_ms,
        )
        for s in snapshots
        for w in s.windows
        if window is None or w.key == window
    ]


# --------------------------------------------------------------------------- agents


class AgentInfo(msgspec.Struct, frozen=True, rename="camel"):
    id: str
    model: str
    updated_at: int


class AgentView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: str
    origin: AgentOrigin
    """``global`` (``~/.claude/agents``), ``workspace``, or ``preference-only`` (no file found)."""
    description: str
    file_model: str | None
    """The model the agent's file asks for."""
    model: str | None
    """The preferred model its requests are sent with; ``null``: as the client asks."""
    updated_at: int | None
    """When the preference was set (epoch ms)."""
    path: str | None
    workspace: str | None


class AgentsResponse(msgspec.Struct, frozen=True):
    agents: list[AgentView]
    """Discovered agents, then the preferences of agents with no file here; by name."""
    workspaces: list[Workspace]


class PreferenceBody(msgspec.Struct, frozen=True):
    model: ModelName


@get("/api/agents", responses=ERROR_RESPONSES, summary="Agents and their model preferences")
async def list_agents(ctx: Ctx) -> AgentsResponse:
    catalog = await agent_catalog(await ctx.agents.discovered(), ctx.store.agent_preferences)
    return AgentsResponse(
        agents=[
            AgentView(
                id=e.id,
                origin=e.origin,
                description=e.description,
                file_model=e.file_model,
                model=e.preferred_model,
                updated_at=e.preference_updated_at_ms,
                path=e.path,
                workspace=e.workspace,
            )
            for e in catalog.agents
        ],
        workspaces=list(catalog.workspaces),
    )


@post(
    "/api/agents/{agent_id:str}/preference",
    responses=ERROR_RESPONSES,
    summary="Pin an agent to a model",
    status_code=200,
)
async def set_agent_preference(
    ctx: Ctx, agent_id: FromPath[str], data: JSONBody[PreferenceBody]
) -> AgentInfo:
    preference = await set_agent_model(
        ctx.store.agent_preferences, agent_id, data.model, ctx.clock.now_ms()
    )
    return AgentInfo(
        id=preference.agent_id, model=preference.model, updated_at=preference.updated_at_ms
    )


@delete(
    "/api/agents/{agent_id:str}/preference",
    responses=ERROR_RESPONSES,
    summary="Forget an agent's model",
    status_code=200,
)
async def delete_agent_preference(ctx: Ctx, agent_id: FromPath[str]) -> dict[str, bool]:
    await clear_agent_model(ctx.store.agent_preferences, agent_id)
    return {"success": True}


INSIGHT_HANDLERS = [
    get_token_health,
    reauth_needed,
    account_token_health,
    session_account,
    usage_history,
    list_agents,
    set_agent_preference,
    delete_agent_preference,
]
