"""``/api/api-keys``: the keys clients present to this proxy.

A new key is returned once, in the creation response, and never again. Every change calls
:meth:`~better_ccflare.proxy.ApiKeyAuthenticator.invalidate`, so it applies to the very next
request. The rules (first key admin, last active admin protected) live in
:mod:`better_ccflare.proxy.admin` so that the CLI enforces exactly the same ones. A key's
limits are set at creation or with ``PUT .../limits``; the list says what each key used against
them (``docs/keys.md``).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import delete, get, patch, post, put
from litestar.params import FromPath, JSONBody

from better_ccflare.core import ApiKey, ApiKeyRole
from better_ccflare.proxy.admin import change_api_key, create_api_key, key_use, set_api_key_limits

from ._api_context import Ctx, ManagementContext
from ._api_errors import ERROR_RESPONSES
from ._key_limits_wire import (
    KeyUsageRow,
    LimitsBody,
    UseInfo,
    limits_body,
    limits_of,
    use_info,
)
from ._times import iso_ms

__all__ = ["API_KEY_HANDLERS"]


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: str
    name: str
    prefix_last8: str
    created_at: str | None
    last_used: str | None
    usage_count: int
    is_active: bool
    role: ApiKeyRole
    limits: LimitsBody | None = None
    """``null`` for a key without limits."""
    use: UseInfo | None = None
    """What the key used against its limits (in the list only)."""


class KeyList(msgspec.Struct, frozen=True):
    success: bool
    data: list[KeyInfo]
    count: int


class NewKey(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: str
    name: str
    api_key: str
    """The key itself: shown in this response only."""
    prefix_last8: str
    created_at: str | None
    role: ApiKeyRole
    limits: LimitsBody | None = None


class Created(msgspec.Struct, frozen=True):
    success: bool
    data: JSONBody[NewKey]


class Done(msgspec.Struct, frozen=True):
    success: bool
    data: JSONBody[KeyInfo]


KeyName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9 _.-]*[A-Za-z0-9_.-][A-Za-z0-9 _.-]*$",
        description="Letters, digits, spaces, '-', '_' and '.'",
    ),
]
"""What :func:`~better_ccflare.proxy.create_api_key` accepts, stated for the schema."""


class CreateBody(msgspec.Struct, frozen=True, kw_only=True):
    name: KeyName
    role: ApiKeyRole | None = None
    """Defaults to admin for the first key and api-only afterwards."""
    limits: LimitsBody | None = None


class RoleBody(msgspec.Struct, frozen=True):
    role: ApiKeyRole


class LimitsChange(msgspec.Struct, frozen=True):
    limits: LimitsBody | None
    """The key's new limits, replacing all the old ones; ``null`` removes them."""


def _info(key: ApiKey, use: UseInfo | None = None) -> KeyInfo:
    return KeyInfo(
        id=key.id,
        name=key.name,
        prefix_last8=key.prefix_last_8,
        created_at=iso_ms(key.created_at_ms),
        last_used=iso_ms(key.last_used_ms),
        usage_count=key.usage_count,
        is_active=key.is_active,
        role=key.role,
        limits=limits_body(key.limits),
        use=use,
    )


@get(
    "/api/api-keys", responses=ERROR_RESPONSES, summary="Every proxy API key (never the key itself)"
)
async def list_keys(ctx: Ctx) -> KeyList:
    keys = await ctx.store.api_keys.list_all()
    now = ctx.clock.now_ms()
    uses = await key_use(ctx.store, now)
    data = [
        _info(k, use_info(uses[k.id], k.id, ctx.key_gate, now) if k.id in uses else None)
        for k in keys
    ]
    return KeyList(success=True, data=data, count=len(keys))


class KeyUsageList(msgspec.Struct, frozen=True):
    success: bool
    data: list[KeyUsageRow]


@get(
    "/api/analytics/keys",
    responses=ERROR_RESPONSES,
    summary="Each key's requests, tokens and spend this UTC day, week and month, with its limits",
)
async def key_usage(ctx: Ctx) -> KeyUsageList:
    keys = await ctx.store.api_keys.list_all()
    now = ctx.clock.now_ms()
    uses = await key_use(ctx.store, now)
    rows = [
        KeyUsageRow(
            id=k.id,
            name=k.name,
            limits=limits_body(k.limits),
            use=use_info(uses[k.id], k.id, ctx.key_gate, now),
        )
        for k in keys
        if k.id in uses
    ]
    rows.sort(key=lambda row: (-row.use.spent_this_month_usd, row.name))
    return KeyUsageList(success=True, data=rows)


@post(
    "/api/api-keys",
    responses=ERROR_RESPONSES,
    summary="Create a key; the response is the only time it is shown",
)
async def create_key(ctx: Ctx, data: JSONBody[CreateBody]) -> Created:
    limits = limits_of(data.limits) if data.limits is not None else None
    key, plaintext = await create_api_key(
        ctx.store, data.name, data.role, now_ms=ctx.clock.now_ms(), limits=limits
    )
    ctx.auth.invalidate()
    return Created(
        success=True,
        data=NewKey(
            id=key.id,
            name=key.name,
            api_key=plaintext,
            prefix_last8=key.prefix_last_8,
            created_at=iso_ms(key.created_at_ms),
            role=key.role,
            limits=limits_body(key.limits),
        ),
    )


async def _changed(ctx: ManagementContext, key_id: str) -> Done:
    ctx.auth.invalidate()
    key = await ctx.store.api_keys.get(key_id)
    assert key is not None  # it was found a moment ago and only deletion removes it
    return Done(success=True, data=_info(key))


@post(
    "/api/api-keys/{id_or_name:str}/enable",
    responses=ERROR_RESPONSES,
    summary="Enable a key",
    status_code=200,
)
async def enable_key(ctx: Ctx, id_or_name: FromPath[str]) -> Done:
    found = await change_api_key(ctx.store, id_or_name, active=True)
    return await _changed(ctx, found.id)


@post(
    "/api/api-keys/{id_or_name:str}/disable",
    responses=ERROR_RESPONSES,
    summary="Disable a key",
    status_code=200,
)
async def disable_key(ctx: Ctx, id_or_name: FromPath[str]) -> Done:
    found = await change_api_key(ctx.store, id_or_name, active=False)
    return await _changed(ctx, found.id)


@patch(
    "/api/api-keys/{id_or_name:str}/role", responses=ERROR_RESPONSES, summary="Change a key's role"
)
async def set_role(ctx: Ctx, id_or_name: FromPath[str], data: JSONBody[RoleBody]) -> Done:
    found = await change_api_key(ctx.store, id_or_name, role=data.role)
    return await _changed(ctx, found.id)


@put(
    "/api/api-keys/{id_or_name:str}/limits",
    responses=ERROR_RESPONSES,
    summary="Replace a key's limits (null removes them)",
)
async def set_limits(ctx: Ctx, id_or_name: FromPath[str], data: JSONBody[LimitsChange]) -> Done:
    limits = limits_of(data.limits) if data.limits is not None else None
    found = await set_api_key_limits(ctx.store, id_or_name, limits)
    return await _changed(ctx, found.id)


@delete(
    "/api/api-keys/{id_or_name:str}",
    responses=ERROR_RESPONSES,
    summary="Delete a key",
    status_code=200,
)
async def delete_key(ctx: Ctx, id_or_name: FromPath[str]) -> dict[str, bool]:
    await change_api_key(ctx.store, id_or_name, delete=True)
    ctx.auth.invalidate()
    return {"success": True}


API_KEY_HANDLERS = [
    list_keys,
    key_usage,
    create_key,
    enable_key,
    disable_key,
    set_role,
    set_limits,
    delete_key,
]
