"""``/api/accounts``: the pool as operators see it, and every change they can make to it.

Paths, methods and JSON field names follow the reference's API, so its scripts keep working.
Every change is written to the store and then the in-memory pool is reloaded, so the proxy
routes by the new state on the very next request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from litestar import Response, delete, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody

from better_ccflare.core import (
    Account,
    InvalidInputError,
    ModelMappings,
    NotFoundError,
    PauseReason,
)
from better_ccflare.proxy.admin import (
    AccountMode,
    NewAccount,
    add_account,
    reset_rate_limit,
    validate_account_name,
    validate_endpoint,
)

from ._api_context import Ctx, ManagementContext
from ._api_errors import ERROR_RESPONSES

__all__ = [
    "ACCOUNT_HANDLERS",
    "AccountName",
    "AccountResponse",
    "Endpoint",
    "Priority",
    "account_names",
    "account_response",
    "add_checked",
    "api_field_names",
    "find_account",
    "iso_ms",
]

# What the schema promises about inputs, so clients (and schemathesis) know what is accepted.
# add_account() checks the same rules again, with messages naming the field.
AccountName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        pattern=r"^[\w .-]*[\w.-][\w .-]*$",
        description="Letters, digits, spaces, '-', '_' and '.'",
    ),
]
Priority = Annotated[int, msgspec.Meta(ge=0, le=100, description="0 is preferred")]
Secret = Annotated[str, msgspec.Meta(min_length=1, pattern=r"\S")]
Endpoint = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$",
        description="Base URL of the upstream",
    ),
]
ModelName = Annotated[str, msgspec.Meta(min_length=1, pattern=r"\S")]
MappingsInput = dict[ModelName, Annotated[list[ModelName], msgspec.Meta(min_length=1)]]
"""Model or family to the models to use instead, first choice first."""

_API_FIELDS = {
    "api_key": "apiKey",
    "endpoint": "customEndpoint",
    "model_mappings": "modelMappings",
    "vertex_project_id": "projectId",
    "vertex_region": "region",
}
"""add_account() names fields as Python does; the API's bodies name them in camelCase."""


@contextlib.contextmanager
def api_field_names() -> Generator[None]:
    """Re-raise the shared account rules' :class:`InvalidInputError` under the body's name."""
    try:
        yield
    except InvalidInputError as exc:
        raise InvalidInputError(_API_FIELDS.get(exc.field, exc.field), exc.message) from exc


async def add_checked(ctx: ManagementContext, new: NewAccount) -> Account:
    """:func:`add_account`, with errors naming the body's fields and the pool reloaded."""
    with api_field_names():
        added = await add_account(ctx.store, new, now_ms=ctx.clock.now_ms())
    await ctx.pool.reload()
    return added


def account_names(ctx: ManagementContext) -> dict[str, str]:
    """Account id to name, from the pool the proxy routes by (no database read)."""
    return {a.id: a.name for a in ctx.pool.accounts()}


def _mappings(given: MappingsInput | None) -> ModelMappings | None:
    return {k: tuple(v) for k, v in given.items()} if given is not None else None


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as an ISO-8601 UTC string (the reference's timestamp format)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


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
    created: str | None
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
        created=iso_ms(account.created_at_ms),
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
    )


async def find_account(ctx: ManagementContext, account_id: str) -> Account:
    """The stored account (also one another process added a moment ago), or a 404."""
    found = await ctx.store.accounts.get(account_id)
    if found is None:
        raise NotFoundError("account", account_id)
    return found


async def _changed(ctx: ManagementContext, account_id: str) -> AccountResponse:
    """Reload the pool after a write, so the proxy routes by it at once; the account as now."""
    await ctx.pool.reload()
    account = ctx.pool.get(account_id)
    if account is None:  # deleted by someone else in the meantime
        raise NotFoundError("account", account_id)
    return account_response(ctx, account)


# --------------------------------------------------------------------------- reads


@get(
    "/api/accounts",
    responses=ERROR_RESPONSES,
    summary="Every account with its live state (never a secret)",
)
async def list_accounts(ctx: Ctx) -> list[AccountResponse]:
    accounts = await ctx.store.accounts.list_all()
    return [account_response(ctx, a) for a in accounts]


@get(
    "/api/accounts/{account_id:str}",
    responses=ERROR_RESPONSES,
    summary="One account with its live state",
)
async def get_account(ctx: Ctx, account_id: FromPath[str]) -> AccountResponse:
    return account_response(ctx, await find_account(ctx, account_id))


# --------------------------------------------------------------------------- adding


class ApiKeyAccountBody(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An account that authenticates with an API key."""

    name: AccountName
    api_key: Secret
    priority: Priority = 0
    custom_endpoint: Endpoint | None = None
    model_mappings: MappingsInput | None = None


class VertexAccountBody(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A Vertex AI account: Google credentials come from the environment (ADC)."""

    name: AccountName
    project_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9.:_-]+$")]
    region: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9-]+$", examples=["us-east5"])]
    priority: Priority = 0
    model_mappings: MappingsInput | None = None


_KEY_MODES = {
    "console": AccountMode.CONSOLE,
    "zai": AccountMode.ZAI,
    "minimax": AccountMode.MINIMAX,
    "nanogpt": AccountMode.NANOGPT,
    "anthropic-compatible": AccountMode.ANTHROPIC_COMPATIBLE,
    "openai-compatible": AccountMode.OPENAI_COMPATIBLE,
}


@post(
    "/api/accounts/{mode:str}",
    responses=ERROR_RESPONSES,
    summary="Add an API-key account (console, zai, minimax, nanogpt, *-compatible)",
    status_code=201,
)
async def add_key_account(
    ctx: Ctx, mode: FromPath[str], data: JSONBody[ApiKeyAccountBody]
) -> AccountResponse:
    account_mode = _KEY_MODES.get(mode)
    if account_mode is None:
        known = ", ".join([*_KEY_MODES, "vertex-ai"])
        raise NotFoundError("account type", f"{mode} (known: {known})")
    added = await add_checked(
        ctx,
        NewAccount(
            name=data.name,
            mode=account_mode,
            priority=data.priority,
            api_key=data.api_key,
            endpoint=data.custom_endpoint,
            model_mappings=_mappings(data.model_mappings),
        ),
    )
    return account_response(ctx, added)


@post(
    "/api/accounts/vertex-ai",
    responses=ERROR_RESPONSES,
    summary="Add a Vertex AI account",
    status_code=201,
)
async def add_vertex_account(ctx: Ctx, data: JSONBody[VertexAccountBody]) -> AccountResponse:
    added = await add_checked(
        ctx,
        NewAccount(
            name=data.name,
            mode=AccountMode.VERTEX_AI,
            priority=data.priority,
            vertex_project_id=data.project_id,
            vertex_region=data.region,
            model_mappings=_mappings(data.model_mappings),
        ),
    )
    return account_response(ctx, added)


# --------------------------------------------------------------------------- changes


class RenameBody(msgspec.Struct, frozen=True):
    name: AccountName


class PriorityBody(msgspec.Struct, frozen=True):
    priority: Priority


class EnabledBody(msgspec.Struct, frozen=True):
    enabled: bool


class EndpointBody(msgspec.Struct, frozen=True, rename="camel"):
    custom_endpoint: Endpoint | None


class MappingsBody(msgspec.Struct, frozen=True, rename="camel"):
    model_mappings: MappingsInput


class DeleteBody(msgspec.Struct, frozen=True):
    confirm: str
    """The account's name, typed again: deleting is not undoable."""


class ResetResponse(msgspec.Struct, frozen=True, rename="camel"):
    success: bool
    usage_poll_triggered: bool


@post(
    "/api/accounts/{account_id:str}/pause",
    responses=ERROR_RESPONSES,
    summary="Stop routing to the account",
)
async def pause_account(ctx: Ctx, account_id: FromPath[str]) -> AccountResponse:
    await find_account(ctx, account_id)
    await ctx.store.accounts.pause(account_id, PauseReason.MANUAL)
    return await _changed(ctx, account_id)


@post(
    "/api/accounts/{account_id:str}/resume",
    responses=ERROR_RESPONSES,
    summary="Route to the account again",
)
async def resume_account(ctx: Ctx, account_id: FromPath[str]) -> AccountResponse:
    await find_account(ctx, account_id)
    await ctx.store.accounts.resume(account_id)
    return await _changed(ctx, account_id)


@post(
    "/api/accounts/{account_id:str}/rename", responses=ERROR_RESPONSES, summary="Rename the account"
)
async def rename_account(
    ctx: Ctx, account_id: FromPath[str], data: JSONBody[RenameBody]
) -> AccountResponse:
    await find_account(ctx, account_id)
    await ctx.store.accounts.rename(account_id, validate_account_name(data.name))
    return await _changed(ctx, account_id)


@post(
    "/api/accounts/{account_id:str}/priority",
    responses=ERROR_RESPONSES,
    summary="Set the priority (0 is preferred)",
)
async def set_priority(
    ctx: Ctx, account_id: FromPath[str], data: JSONBody[PriorityBody]
) -> AccountResponse:
    await find_account(ctx, account_id)
    await ctx.store.accounts.set_priority(account_id, data.priority)
    return await _changed(ctx, account_id)


_Flag = Literal["auto_fallback", "auto_refresh", "auto_pause_on_overage", "peak_hours_pause"]


def _toggle(slug: str, flag: _Flag, summary: str) -> HTTPRouteHandler:
    """``POST /api/accounts/{id}/<slug> {"enabled": bool}``: one per account toggle."""

    @post(
        f"/api/accounts/{{account_id:str}}/{slug}",
        responses=ERROR_RESPONSES,
        summary=summary,
        operation_id=f"set-{slug}",
        name=f"set-{slug}",
    )
    async def set_flag(
        ctx: Ctx, account_id: FromPath[str], data: JSONBody[EnabledBody]
    ) -> AccountResponse:
        await find_account(ctx, account_id)
        await ctx.store.accounts.set_flags(account_id, **{flag: data.enabled})
        return await _changed(ctx, account_id)

    return set_flag


_TOGGLES = [
    _toggle("auto-fallback", "auto_fallback", "Toggle auto-fallback"),
    _toggle("auto-refresh", "auto_refresh", "Toggle usage-window auto-refresh"),
    _toggle(
        "auto-pause-on-overage",
        "auto_pause_on_overage",
        "Toggle pausing the account when it would bill overage",
    ),
    _toggle("peak-hours-pause", "peak_hours_pause", "Toggle pausing during peak hours (z.ai)"),
]


@post(
    "/api/accounts/{account_id:str}/custom-endpoint",
    responses=ERROR_RESPONSES,
    summary="Set or clear the endpoint",
)
async def set_custom_endpoint(
    ctx: Ctx, account_id: FromPath[str], data: JSONBody[EndpointBody]
) -> AccountResponse:
    await find_account(ctx, account_id)
    with api_field_names():
        endpoint = validate_endpoint(data.custom_endpoint) if data.custom_endpoint else None
    await ctx.store.accounts.set_custom_endpoint(account_id, endpoint)
    return await _changed(ctx, account_id)


@post(
    "/api/accounts/{account_id:str}/model-mappings",
    responses=ERROR_RESPONSES,
    summary="Replace the model mappings",
)
async def set_model_mappings(
    ctx: Ctx, account_id: FromPath[str], data: JSONBody[MappingsBody]
) -> AccountResponse:
    await find_account(ctx, account_id)
    mappings = {k.strip(): tuple(t.strip() for t in v) for k, v in data.model_mappings.items()}
    await ctx.store.accounts.set_model_mappings(account_id, mappings)
    return await _changed(ctx, account_id)


@post(
    "/api/accounts/{account_id:str}/force-reset-rate-limit",
    responses=ERROR_RESPONSES,
    summary="Clear the account's cooldown and poll its usage again",
)
async def force_reset_rate_limit(ctx: Ctx, account_id: FromPath[str]) -> ResetResponse:
    await find_account(ctx, account_id)
    await reset_rate_limit(ctx.store, account_id)
    await ctx.pool.reload()
    ctx.poll_usage(account_id)
    return ResetResponse(success=True, usage_poll_triggered=True)


@post(
    "/api/accounts/{account_id:str}/refresh-usage",
    responses=ERROR_RESPONSES,
    summary="Poll the usage windows soon",
)
async def refresh_usage(ctx: Ctx, account_id: FromPath[str]) -> ResetResponse:
    await find_account(ctx, account_id)
    ctx.poll_usage(account_id)
    return ResetResponse(success=True, usage_poll_triggered=True)


@delete(
    "/api/accounts/{account_id:str}",
    responses=ERROR_RESPONSES,
    summary="Delete the account (send its name as confirm)",
    status_code=200,
)
async def delete_account(
    ctx: Ctx,
    account_id: FromPath[str],
    data: JSONBody[DeleteBody],
) -> Response[dict[str, bool]]:
    found = await find_account(ctx, account_id)
    if data.confirm != found.name:
        raise InvalidInputError("confirm", f"type the account's name, {found.name!r}, to delete it")
    await ctx.store.accounts.delete(account_id)
    ctx.usage.forget(account_id)
    await ctx.pool.reload()
    return Response({"success": True})


ACCOUNT_HANDLERS = [
    list_accounts,
    get_account,
    add_vertex_account,
    add_key_account,
    pause_account,
    resume_account,
    rename_account,
    set_priority,
    *_TOGGLES,
    set_custom_endpoint,
    set_model_mappings,
    force_reset_rate_limit,
    refresh_usage,
    delete_account,
]
