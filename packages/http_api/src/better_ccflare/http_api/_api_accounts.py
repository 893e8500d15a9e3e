"""``/api/accounts``: the pool as operators see it, and every change they can make to it.

Paths, methods and JSON field names follow the reference's API, so its scripts keep working.
Every change is written to the store and then the in-memory pool is reloaded, so the proxy
routes by the new state on the very next request.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Response, delete, get, patch, post
from litestar.exceptions import NotFoundException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody

from better_ccflare.core import (
    BillingType,
    InvalidInputError,
    ModelMappings,
    NotFoundError,
    PauseReason,
)
from better_ccflare.providers import UnknownAccountTypeError
from better_ccflare.proxy.admin import (
    AccountEdit,
    NewAccount,
    edit_account,
    logs_in_only,
    reset_rate_limit,
)

from ._account_input import (
    AccountName,
    Endpoint,
    FieldName,
    MappingsInput,
    NonBlank,
    Priority,
    Secret,
    add_checked,
    api_field_names,
)
from ._account_lookup import find_account
from ._account_response import AccountResponse, account_response
from ._api_context import Ctx, ManagementContext
from ._api_errors import errors

__all__ = ["ACCOUNT_HANDLERS"]


def _mappings(given: MappingsInput | None) -> ModelMappings | None:
    return {k: tuple(v) for k, v in given.items()} if given is not None else None


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
    tags=["accounts"],
    responses=errors(),
    summary="Every account with its live state (never a secret)",
)
async def list_accounts(ctx: Ctx) -> list[AccountResponse]:
    """Every account, by priority then age, with its state, cooldown, usage windows and
    settings as the proxy sees them now. Credentials are never shown."""
    await ctx.pool.written()
    accounts = await ctx.store.accounts.list_all()
    return [account_response(ctx, a) for a in accounts]


@get(
    "/api/accounts/{account_id:str}",
    tags=["accounts"],
    responses=errors(missing="account"),
    summary="One account with its live state",
)
async def get_account(ctx: Ctx, account_id: FromPath[str]) -> AccountResponse:
    """The account with this id, shown as in the list."""
    await ctx.pool.written()
    return account_response(ctx, await find_account(ctx, account_id))


# --------------------------------------------------------------------------- adding


class AddAccountBody(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An account of any registered type. ``GET /api/providers`` lists each type's fields.

    Every declared field can be sent in ``fields`` by its declared name; the built-ins' four
    are also taken at top level under the reference's names (``apiKey``, ``customEndpoint``,
    ``projectId``, ``region``). Giving one both ways is refused.
    """

    name: AccountName
    priority: Priority = 0
    model_mappings: Annotated[
        MappingsInput | None,
        msgspec.Meta(description="Model or family to the models to use instead, first first"),
    ] = None
    api_key: Annotated[Secret, msgspec.Meta(description="The account's API key")] | None = None
    custom_endpoint: Endpoint | None = None
    project_id: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=r"^[A-Za-z0-9.:_-]+$", description="Google Cloud project (vertex-ai)"
            ),
        ]
        | None
    ) = None
    region: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=r"^[a-z0-9-]+$",
                examples=["us-east5"],
                description="Google Cloud region (vertex-ai)",
            ),
        ]
        | None
    ) = None
    fields: Annotated[
        dict[FieldName, str] | None,
        msgspec.Meta(
            description='Declared field name to value, e.g. {"api_key": "...", "tenant": "t1"}'
        ),
    ] = None


@post(
    "/api/accounts/{account_type:str}",
    tags=["accounts"],
    responses=errors(
        changes=True,
        invalid=True,
        missing="account type",
        conflict="an account with this name (and provider and endpoint) exists",
    ),
    summary="Add an account of any registered type (built-in or plugin; see /api/providers)",
    status_code=201,
)
async def add_account(
    ctx: Ctx, account_type: FromPath[str], data: JSONBody[AddAccountBody]
) -> AccountResponse:
    """Adds an account with the fields its type declares (``GET /api/providers``); the proxy
    routes to it on the next request. Types that are added only by logging in (Claude
    subscriptions) are refused here: use ``POST /api/oauth/init``."""
    try:
        provider = ctx.registry.for_account_type(account_type)
    except UnknownAccountTypeError as exc:
        raise NotFoundException(str(exc)) from exc
    if logs_in_only(provider):
        raise InvalidInputError(
            "type",
            f"{provider.account_type} accounts are added by logging in; use POST /api/oauth/init",
        )
    added = await add_checked(
        ctx,
        NewAccount(
            name=data.name,
            mode=account_type,
            priority=data.priority,
            api_key=data.api_key,
            endpoint=data.custom_endpoint,
            vertex_project_id=data.project_id,
            vertex_region=data.region,
            fields=dict(data.fields or {}),
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
    enabled: Annotated[bool, msgspec.Meta(description="On or off")]


class EndpointBody(msgspec.Struct, frozen=True, rename="camel"):
    custom_endpoint: (
        Annotated[Endpoint, msgspec.Meta(description="Base URL of the upstream; null: default")]
        | None
    )


class MappingsBody(msgspec.Struct, frozen=True, rename="camel"):
    model_mappings: Annotated[
        MappingsInput,
        msgspec.Meta(description="Model or family to the models to use instead, first first"),
    ]


_BILLING_TYPE = "plan, api or overage; null lets the upstream's headers decide"


class BillingTypeBody(msgspec.Struct, frozen=True, rename="camel"):
    billing_type: Annotated[BillingType | None, msgspec.Meta(description=_BILLING_TYPE)]


class EditBody(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The settings to change; a field left out keeps its value. ``customEndpoint`` and
    ``billingType`` take ``null`` to go back to the default."""

    name: Annotated[AccountName | None, msgspec.Meta(description="The new name")] = None
    priority: Annotated[
        Priority | None, msgspec.Meta(description="0 to 100; lower is preferred")
    ] = None
    custom_endpoint: Annotated[
        Endpoint | msgspec.UnsetType | None,
        msgspec.Meta(description="Base URL of the upstream; null: the default"),
    ] = msgspec.UNSET
    model_mappings: Annotated[
        MappingsInput | None,
        msgspec.Meta(
            description="Replaces every mapping (model or family to the models to use instead); "
            "{} removes them all"
        ),
    ] = None
    auto_fallback_enabled: Annotated[
        bool | None, msgspec.Meta(description="See POST .../auto-fallback")
    ] = None
    auto_refresh_enabled: Annotated[
        bool | None, msgspec.Meta(description="See POST .../auto-refresh")
    ] = None
    auto_pause_on_overage_enabled: Annotated[
        bool | None, msgspec.Meta(description="See POST .../auto-pause-on-overage")
    ] = None
    peak_hours_pause_enabled: Annotated[
        bool | None, msgspec.Meta(description="See POST .../peak-hours-pause")
    ] = None
    billing_type: Annotated[
        BillingType | msgspec.UnsetType | None, msgspec.Meta(description=_BILLING_TYPE)
    ] = msgspec.UNSET


class DeleteBody(msgspec.Struct, frozen=True):
    confirm: Annotated[
        NonBlank,
        msgspec.Meta(description="The account's name, typed again: deleting is not undoable"),
    ]


class UsagePollResponse(msgspec.Struct, frozen=True, rename="camel"):
    success: Annotated[bool, msgspec.Meta(description="Always true")]
    usage_poll_triggered: Annotated[
        bool, msgspec.Meta(description="The usage windows will be polled within seconds")
    ]


@post(
    "/api/accounts/{account_id:str}/pause",
    tags=["accounts"],
    responses=errors(changes=True, missing="account"),
    summary="Stop routing to the account",
)
async def pause_account(ctx: Ctx, account_id: FromPath[str]) -> AccountResponse:
    """Pauses the account by hand (reason ``manual``) until it is resumed; requests already
    under way finish. Returns the account as now."""
    await find_account(ctx, account_id)
    await ctx.store.accounts.pause(account_id, PauseReason.MANUAL)
    return await _changed(ctx, account_id)


@post(
    "/api/accounts/{account_id:str}/resume",
    tags=["accounts"],
    responses=errors(changes=True, missing="account"),
    summary="Route to the account again",
)
async def resume_account(ctx: Ctx, account_id: FromPath[str]) -> AccountResponse:
    """Ends a pause of any reason; the account serves again unless it is cooling down.
    Returns the account as now."""
    await find_account(ctx, account_id)
    await ctx.store.accounts.resume(account_id)
    return await _changed(ctx, account_id)


async def _edit(ctx: ManagementContext, account_id: str, edit: AccountEdit) -> AccountResponse:
    """Apply ``edit`` through the shared account rules (the CLI's ``account edit`` too)."""
    await find_account(ctx, account_id)
    with api_field_names():
        await edit_account(ctx.store, account_id, edit, registry=ctx.registry)
    return await _changed(ctx, account_id)


@patch(
    "/api/accounts/{account_id:str}",
    tags=["accounts"],
    responses=errors(changes=True, invalid=True, missing="account", conflict="the name is taken"),
    summary="Change any of the account's settings at once (all checked before any is written)",
)
async def edit_account_settings(
    ctx: Ctx, account_id: FromPath[str], data: JSONBody[EditBody]
) -> AccountResponse:
    """Changes every setting the body names, the same way ``better-ccflare account edit``
    does: each value is checked against the account's type first, so a refused edit changes
    nothing. A field left out keeps its value. Returns the account as now."""
    endpoint: str | msgspec.UnsetType | None = data.custom_endpoint
    return await _edit(
        ctx,
        account_id,
        AccountEdit(
            name=data.name,
            priority=data.priority,
            endpoint=endpoint,
            model_mappings=_mappings(data.model_mappings),
            auto_fallback=data.auto_fallback_enabled,
            auto_refresh=data.auto_refresh_enabled,
            auto_pause_on_overage=data.auto_pause_on_overage_enabled,
            peak_hours_pause=data.peak_hours_pause_enabled,
            billing_type=data.billing_type,
        ),
    )


@post(
    "/api/accounts/{account_id:str}/rename",
    tags=["accounts"],
    responses=errors(changes=True, invalid=True, missing="account", conflict="the name is taken"),
    summary="Rename the account",
)
async def rename_account(
    ctx: Ctx, account_id: FromPath[str], data: JSONBody[RenameBody]
) -> AccountResponse:
    """Renames the account; its id, settings and history stay. Returns the account as now."""
    return await _edit(ctx, account_id, AccountEdit(name=data.name))


@post(
    "/api/accounts/{account_id:str}/priority",
    tags=["accounts"],
    responses=errors(changes=True, invalid=True, missing="account"),
    summary="Set the priority (0 is preferred)",
)
async def set_priority(
    ctx: Ctx, account_id: FromPath[str], data: JSONBody[PriorityBody]
) -> AccountResponse:
    """Sets the priority the strategies order accounts by, 0 (first) to 100. Returns the
    account as now."""
    return await _edit(ctx, account_id, AccountEdit(priority=data.priority))


_Flag = Literal["auto_fallback", "auto_refresh", "auto_pause_on_overage", "peak_hours_pause"]


def _toggle(slug: str, flag: _Flag, summary: str, description: str) -> HTTPRouteHandler:
    """``POST /api/accounts/{id}/<slug> {"enabled": bool}``: one per account toggle."""

    @post(
        f"/api/accounts/{{account_id:str}}/{slug}",
        tags=["accounts"],
        responses=errors(changes=True, invalid=True, missing="account"),
        summary=summary,
        description=f"{description} Returns the account as now.",
        operation_id=f"set-{slug}",
        name=f"set-{slug}",
    )
    async def set_flag(
        ctx: Ctx, account_id: FromPath[str], data: JSONBody[EnabledBody]
    ) -> AccountResponse:
        edit = msgspec.structs.replace(AccountEdit(), **{flag: data.enabled})
        return await _edit(ctx, account_id, edit)

    return set_flag


_TOGGLES = [
    _toggle(
        "auto-fallback",
        "auto_fallback",
        "Toggle auto-fallback",
        "With auto-fallback, a subscription paused for its usage window (or for overage) is "
        "let back in once the window resets.",
    ),
    _toggle(
        "auto-refresh",
        "auto_refresh",
        "Toggle usage-window auto-refresh",
        "With auto-refresh, an idle subscription gets a tiny request as soon as its usage "
        "window resets, so the next window starts at once.",
    ),
    _toggle(
        "auto-pause-on-overage",
        "auto_pause_on_overage",
        "Toggle pausing the account when it would bill overage",
        "With it on, the account is paused (reason ``overage``) when an answer says "
        "``anthropic-ratelimit-unified-overage-in-use: true``.",
    ),
    _toggle(
        "peak-hours-pause",
        "peak_hours_pause",
        "Toggle pausing during peak hours (z.ai)",
        "With it on, a z.ai account is kept out of routing 14:00-18:00 Singapore time.",
    ),
]


@post(
    "/api/accounts/{account_id:str}/custom-endpoint",
    tags=["accounts"],
    responses=errors(changes=True, invalid=True, missing="account"),
    summary="Set or clear the endpoint",
)
async def set_custom_endpoint(
    ctx: Ctx, account_id: FromPath[str], data: JSONBody[EndpointBody]
) -> AccountResponse:
    """Sends the account's requests to this base URL instead of its type's default; ``null``
    or an empty string goes back to the default. Returns the account as now."""
    return await _edit(ctx, account_id, AccountEdit(endpoint=data.custom_endpoint))


@post(
    "/api/accounts/{account_id:str}/model-mappings",
    tags=["accounts"],
    responses=errors(changes=True, invalid=True, missing="account"),
    summary="Replace the model mappings",
)
async def set_model_mappings(
    ctx: Ctx, account_id: FromPath[str], data: JSONBody[MappingsBody]
) -> AccountResponse:
    """Replaces every mapping: a request for a model (or family, e.g. ``sonnet``) on this
    account asks for the first of its list instead, and falls back along the list when that
    model is unavailable. ``{}`` removes them all. Returns the account as now."""
    return await _edit(
        ctx, account_id, AccountEdit(model_mappings=_mappings(data.model_mappings) or {})
    )


@post(
    "/api/accounts/{account_id:str}/billing-type",
    tags=["accounts"],
    responses=errors(changes=True, invalid=True, missing="account"),
    summary="Set or clear the account's billing type",
)
async def set_billing_type(
    ctx: Ctx, account_id: FromPath[str], data: JSONBody[BillingTypeBody]
) -> AccountResponse:
    """Sets how the account's requests are billed when the upstream's headers do not say
    (``plan``, ``api`` or ``overage``); ``null`` lets the headers decide. Returns the account
    as now."""
    return await _edit(ctx, account_id, AccountEdit(billing_type=data.billing_type))


@post(
    "/api/accounts/{account_id:str}/force-reset-rate-limit",
    tags=["accounts"],
    responses=errors(changes=True, missing="account"),
    summary="Clear the account's cooldown and poll its usage again",
)
async def force_reset_rate_limit(ctx: Ctx, account_id: FromPath[str]) -> UsagePollResponse:
    """Ends any cooldown or breaker bench at once (the next request may use the account) and
    asks for a fresh usage reading."""
    await find_account(ctx, account_id)
    await reset_rate_limit(ctx.store, account_id)
    await ctx.pool.reload()
    ctx.poll_usage(account_id)
    return UsagePollResponse(success=True, usage_poll_triggered=True)


@post(
    "/api/accounts/{account_id:str}/refresh-usage",
    tags=["accounts"],
    responses=errors(changes=True, missing="account"),
    summary="Poll the usage windows soon",
)
async def refresh_usage(ctx: Ctx, account_id: FromPath[str]) -> UsagePollResponse:
    """Asks the usage poller to read the account's usage windows within seconds."""
    await find_account(ctx, account_id)
    ctx.poll_usage(account_id)
    return UsagePollResponse(success=True, usage_poll_triggered=True)


@delete(
    "/api/accounts/{account_id:str}",
    tags=["accounts"],
    responses=errors(changes=True, invalid=True, missing="account"),
    summary="Delete the account (send its name as confirm)",
    status_code=200,
)
async def delete_account(
    ctx: Ctx,
    account_id: FromPath[str],
    data: JSONBody[DeleteBody],
) -> Response[dict[str, bool]]:
    """Deletes the account and its credentials; its past requests stay in the history.
    Answers ``{"success": true}``."""
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
    add_account,
    pause_account,
    resume_account,
    edit_account_settings,
    rename_account,
    set_priority,
    *_TOGGLES,
    set_custom_endpoint,
    set_model_mappings,
    set_billing_type,
    force_reset_rate_limit,
    refresh_usage,
    delete_account,
]
