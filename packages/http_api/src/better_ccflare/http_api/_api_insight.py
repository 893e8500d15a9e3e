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
from litestar.params import FromPath, JSONBody, QueryParameter

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
from ._api_errors import errors

__all__ = ["INSIGHT_HANDLERS"]

_DAY = 86_400_000
_USAGE_RANGES = {"1h": _DAY // 24, "6h": _DAY // 4, "24h": _DAY, "7d": 7 * _DAY, "30d": 30 * _DAY}

# --------------------------------------------------------------------------- token health


class TokenHealthSummary(msgspec.Struct, frozen=True, rename="camel"):
    total: Annotated[int, msgspec.Meta(description="Accounts")]
    healthy: Annotated[int, msgspec.Meta(description="Accounts whose refresh token is young")]
    warning: Annotated[int, msgspec.Meta(description="Accounts whose refresh token ages")]
    critical: Annotated[
        int, msgspec.Meta(description="Accounts whose refresh token is about to expire")
    ]
    expired: Annotated[int, msgspec.Meta(description="Accounts whose refresh token expired")]
    no_refresh_token: Annotated[
        int, msgspec.Meta(description="Accounts without a refresh token (API keys)")
    ]
    requires_reauth: Annotated[int, msgspec.Meta(description="Accounts that need a new login")]


class TokenHealthEntry(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    account_id: Annotated[str, msgspec.Meta(description="The account's id")]
    account_name: Annotated[str, msgspec.Meta(description="The account's name")]
    provider: Annotated[str, msgspec.Meta(description="The account's provider")]
    status: Annotated[
        TokenHealthStatus, msgspec.Meta(description="How close the refresh token is to its end")
    ]
    requires_reauth: Annotated[bool, msgspec.Meta(description="Whether it needs a new login")]
    issued_at: Annotated[
        int | None, msgspec.Meta(description="When the refresh token was issued (epoch ms)")
    ]
    expires_at: Annotated[
        int | None,
        msgspec.Meta(description="When it is assumed to expire (epoch ms)"),
    ]
    remaining_ms: Annotated[int | None, msgspec.Meta(description="Time left until then (ms)")]


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
    accounts: Annotated[list[TokenHealthEntry], msgspec.Meta(description="Every account")]
    summary: Annotated[TokenHealthSummary, msgspec.Meta(description="Counts by status")]
    timestamp: Annotated[int, msgspec.Meta(description="When this was computed (epoch ms)")]


class TokenHealthResponse(msgspec.Struct, frozen=True):
    success: Annotated[bool, msgspec.Meta(description="Always true")]
    data: Annotated[TokenHealthData, msgspec.Meta(description="The report")]


def _reports(ctx: ManagementContext) -> list[TokenHealthReport]:
    now = ctx.clock.now_ms()
    return [token_health(a, now) for a in ctx.pool.accounts()]


@get(
    "/api/token-health",
    tags=["accounts"],
    responses=errors(),
    summary="Refresh-token age of every account, and a summary",
)
async def get_token_health(ctx: Ctx) -> TokenHealthResponse:
    """How close each account's refresh token is to its assumed maximum age (no network
    call), so a login can be renewed before the account stops serving."""
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
    tags=["accounts"],
    responses=errors(),
    summary="Accounts that need a new login",
)
async def reauth_needed(ctx: Ctx) -> list[TokenHealthEntry]:
    """Accounts that need a new login now or soon: marked for one, or whose refresh token is
    expired or critical."""
    return [
        _entry(r)
        for r in _reports(ctx)
        if r.requires_reauth or r.status in (TokenHealthStatus.EXPIRED, TokenHealthStatus.CRITICAL)
    ]


@get(
    "/api/token-health/account/{name:str}",
    tags=["accounts"],
    responses=errors(missing="account"),
    summary="One account's refresh-token health",
)
async def account_token_health(ctx: Ctx, name: FromPath[str]) -> TokenHealthEntry:
    """The entry of the account with this name."""
    for report in _reports(ctx):
        if report.account_name == name:
            return _entry(report)
    raise NotFoundError("account", name)


# --------------------------------------------------------------------------- sessions


class SessionWindow(msgspec.Struct, frozen=True, rename="camel"):
    key: Annotated[str, msgspec.Meta(description="The window, e.g. five_hour or seven_day")]
    utilization: Annotated[float, msgspec.Meta(description="Percent of the window used")]
    resets_at: Annotated[int | None, msgspec.Meta(description="When the window resets (epoch ms)")]


class SessionAccount(msgspec.Struct, frozen=True):
    id: Annotated[str, msgspec.Meta(description="The account's id")]
    name: Annotated[str, msgspec.Meta(description="The account's name")]
    provider: Annotated[str, msgspec.Meta(description="The account's provider")]
    windows: Annotated[
        list[SessionWindow],
        msgspec.Meta(description="The account's usage windows as last polled; empty while unknown"),
    ]


class SessionResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    status: Annotated[
        Literal["known", "unknown"],
        msgspec.Meta(description="unknown: no request of the session was served yet"),
    ]
    account: Annotated[
        SessionAccount | None,
        msgspec.Meta(description="The account that served its latest request; absent if unknown"),
    ] = None


@get(
    "/api/sessions/{session_id:str}/account",
    tags=["requests"],
    responses=errors(),
    summary="The account serving a client session",
)
async def session_account(
    ctx: Ctx, request: Request[Any, Any, Any], session_id: FromPath[str]
) -> SessionResponse:
    """Which account served the session's latest request, from the request history; status
    lines (``better-ccflare statusline``) poll it to show the account a Claude Code session is
    on, with its usage windows. The id is Claude Code's session id, or a whole
    ``metadata.user_id``; an api-only key sees only its own sessions."""
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
    timestamp: Annotated[int, msgspec.Meta(description="When it was read (epoch ms)")]
    window: Annotated[str, msgspec.Meta(description="The window, e.g. five_hour")]
    utilization: Annotated[float, msgspec.Meta(description="Percent of the window used")]
    resets_at: Annotated[int | None, msgspec.Meta(description="When the window resets (epoch ms)")]


@get(
    "/api/usage-history",
    tags=["analytics"],
    responses=errors(invalid=True, missing="account"),
    summary="An account's usage windows over time",
)
async def usage_history(
    ctx: Ctx,
    *,
    account: Annotated[str, QueryParameter(description="Account id")],
    range: Annotated[
        Literal["1h", "6h", "24h", "7d", "30d"], QueryParameter(description="The period")
    ] = "24h",
    window: Annotated[
        str | None, QueryParameter(description="Only this window, e.g. five_hour")
    ] = None,
) -> list[UsagePoint]:
    """Every usage reading of the account in the period, one point per window."""
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


_AgentId = Annotated[str, msgspec.Meta(description="The agent's name")]


class AgentInfo(msgspec.Struct, frozen=True, rename="camel"):
    id: _AgentId
    model: Annotated[str, msgspec.Meta(description="The model its requests are sent with")]
    updated_at: Annotated[int, msgspec.Meta(description="When it was set (epoch ms)")]


class AgentView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: _AgentId
    origin: Annotated[
        AgentOrigin,
        msgspec.Meta(
            description="global (~/.claude/agents), workspace, or preference-only (no file)"
        ),
    ]
    description: Annotated[str, msgspec.Meta(description="From the agent's file")]
    file_model: Annotated[
        str | None, msgspec.Meta(description="The model the agent's file asks for")
    ]
    model: Annotated[
        str | None,
        msgspec.Meta(description="The preferred model its requests are sent with; null: as asked"),
    ]
    updated_at: Annotated[
        int | None, msgspec.Meta(description="When the preference was set (epoch ms)")
    ]
    path: Annotated[str | None, msgspec.Meta(description="The agent's file")]
    workspace: Annotated[str | None, msgspec.Meta(description="The workspace it was found in")]


class AgentsResponse(msgspec.Struct, frozen=True):
    agents: Annotated[
        list[AgentView],
        msgspec.Meta(
            description="Discovered agents, then the preferences of agents with no file here"
        ),
    ]
    workspaces: Annotated[
        list[Workspace], msgspec.Meta(description="The workspaces searched for agents")
    ]


class PreferenceBody(msgspec.Struct, frozen=True):
    model: Annotated[ModelName, msgspec.Meta(description="The model the agent should use")]


@get(
    "/api/agents",
    tags=["agents"],
    responses=errors(),
    summary="Agents and their model preferences",
)
async def list_agents(ctx: Ctx) -> AgentsResponse:
    """Claude Code agents found in ``~/.claude/agents`` and each workspace's
    ``.claude/agents``, with the model each is pinned to, if any."""
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
    tags=["agents"],
    responses=errors(changes=True, invalid=True),
    summary="Pin an agent to a model",
    status_code=200,
)
async def set_agent_preference(
    ctx: Ctx, agent_id: FromPath[str], data: JSONBody[PreferenceBody]
) -> AgentInfo:
    """The agent's requests are sent with this model from now on, whatever they ask for."""
    preference = await set_agent_model(
        ctx.store.agent_preferences, agent_id, data.model, ctx.clock.now_ms()
    )
    return AgentInfo(
        id=preference.agent_id, model=preference.model, updated_at=preference.updated_at_ms
    )


@delete(
    "/api/agents/{agent_id:str}/preference",
    tags=["agents"],
    responses=errors(changes=True, missing="preference for that agent"),
    summary="Forget an agent's model",
    status_code=200,
)
async def delete_agent_preference(ctx: Ctx, agent_id: FromPath[str]) -> dict[str, bool]:
    """The agent's requests keep the model they ask for again; answers ``{"success": true}``."""
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
