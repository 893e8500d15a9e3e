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
from ._api_errors import errors
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


_Id = Annotated[str, msgspec.Meta(description="The key's id")]
_Name = Annotated[str, msgspec.Meta(description="The key's name")]
_Last8 = Annotated[str, msgspec.Meta(description="The key's last eight characters, to tell it")]
_CreatedAt = Annotated[str | None, msgspec.Meta(description="When it was created (ISO-8601 UTC)")]
_CreatedAtMs = Annotated[int, msgspec.Meta(description="The same time as createdAt, in epoch ms")]
_Role = Annotated[
    ApiKeyRole, msgspec.Meta(description="admin: everything; api-only: the proxy routes only")
]
_Success = Annotated[bool, msgspec.Meta(description="Always true")]


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: _Id
    name: _Name
    prefix_last8: _Last8
    created_at: _CreatedAt
    created_at_ms: _CreatedAtMs
    last_used: Annotated[
        str | None, msgspec.Meta(description="When it was last used (ISO-8601 UTC), if ever")
    ]
    last_used_ms: Annotated[
        int | None, msgspec.Meta(description="The same time as lastUsed, in epoch ms")
    ]
    usage_count: Annotated[
        int, msgspec.Meta(description="Recorded uses (written at most every few seconds)")
    ]
    is_active: Annotated[bool, msgspec.Meta(description="Disabled keys are refused")]
    role: _Role
    limits: Annotated[
        LimitsBody | None, msgspec.Meta(description="Its limits; null: a key without limits")
    ] = None
    use: Annotated[
        UseInfo | None,
        msgspec.Meta(description="What it used against its limits (in the list only)"),
    ] = None


class KeyList(msgspec.Struct, frozen=True):
    success: _Success
    data: Annotated[list[KeyInfo], msgspec.Meta(description="Every key, never the key itself")]
    count: Annotated[int, msgspec.Meta(description="How many keys there are")]


class NewKey(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: _Id
    name: _Name
    api_key: Annotated[str, msgspec.Meta(description="The key itself: shown in this response only")]
    prefix_last8: _Last8
    created_at: _CreatedAt
    created_at_ms: _CreatedAtMs
    role: _Role
    limits: Annotated[
        LimitsBody | None, msgspec.Meta(description="Its limits; null: a key without limits")
    ] = None


class Created(msgspec.Struct, frozen=True):
    success: _Success
    data: Annotated[NewKey, msgspec.Meta(description="The new key")]


class Done(msgspec.Struct, frozen=True):
    success: _Success
    data: Annotated[KeyInfo, msgspec.Meta(description="The key as now")]


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
    role: Annotated[
        ApiKeyRole | None,
        msgspec.Meta(description="Defaults to admin for the first key and api-only afterwards"),
    ] = None
    limits: Annotated[
        LimitsBody | None, msgspec.Meta(description="Its limits; null: a key without limits")
    ] = None


class RoleBody(msgspec.Struct, frozen=True):
    role: _Role


class LimitsChange(msgspec.Struct, frozen=True):
    limits: Annotated[
        LimitsBody | None,
        msgspec.Meta(description="The key's new limits, replacing all the old; null removes them"),
    ]


def _info(key: ApiKey, use: UseInfo | None = None) -> KeyInfo:
    return KeyInfo(
        id=key.id,
        name=key.name,
        prefix_last8=key.prefix_last_8,
        created_at=iso_ms(key.created_at_ms),
        created_at_ms=key.created_at_ms,
        last_used=iso_ms(key.last_used_ms),
        last_used_ms=key.last_used_ms,
        usage_count=key.usage_count,
        is_active=key.is_active,
        role=key.role,
        limits=limits_body(key.limits),
        use=use,
    )


@get(
    "/api/api-keys",
    tags=["api-keys"],
    responses=errors(),
    summary="Every proxy API key (never the key itself)",
)
async def list_keys(ctx: Ctx) -> KeyList:
    """Every key with its role, state and use; only its last eight characters are shown."""
    keys = await ctx.store.api_keys.list_all()
    now = ctx.clock.now_ms()
    uses = await key_use(ctx.store, now)
    data = [
        _info(k, use_info(uses[k.id], k.id, ctx.key_gate, now) if k.id in uses else None)
        for k in keys
    ]
    return KeyList(success=True, data=data, count=len(keys))


class KeyUsageList(msgspec.Struct, frozen=True):
    success: _Success
    data: Annotated[list[KeyUsageRow], msgspec.Meta(description="Each key's use, most spent first")]


@get(
    "/api/analytics/keys",
    tags=["analytics"],
    responses=errors(),
    summary="Each key's requests, tokens and spend this UTC day, week and month, with its limits",
)
async def key_usage(ctx: Ctx) -> KeyUsageList:
    """Every key with its use and limits, the one that spent most this month first."""
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
    tags=["api-keys"],
    responses=errors(changes=True, invalid=True, conflict="a key with this name exists"),
    summary="Create a key; the response is the only time it is shown",
)
async def create_key(ctx: Ctx, data: JSONBody[CreateBody]) -> Created:
    """Creates a key. The first key is an admin and turns authentication on: from then on
    every ``/v1`` and ``/api`` call needs a key."""
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
            created_at_ms=key.created_at_ms,
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
    tags=["api-keys"],
    responses=errors(changes=True, missing="API key"),
    summary="Enable a key",
    status_code=200,
)
async def enable_key(ctx: Ctx, id_or_name: FromPath[str]) -> Done:
    """The key, by id or name, is accepted again from the next request."""
    found = await change_api_key(ctx.store, id_or_name, active=True)
    return await _changed(ctx, found.id)


@post(
    "/api/api-keys/{id_or_name:str}/disable",
    tags=["api-keys"],
    responses=errors(changes=True, missing="API key", conflict="it is the last active admin key"),
    summary="Disable a key",
    status_code=200,
)
async def disable_key(ctx: Ctx, id_or_name: FromPath[str]) -> Done:
    """The key, by id or name, is refused from the next request; it can be enabled again."""
    found = await change_api_key(ctx.store, id_or_name, active=False)
    return await _changed(ctx, found.id)


@patch(
    "/api/api-keys/{id_or_name:str}/role",
    tags=["api-keys"],
    responses=errors(
        changes=True,
        invalid=True,
        missing="API key",
        conflict="it is the last active admin key",
    ),
    summary="Change a key's role",
)
async def set_role(ctx: Ctx, id_or_name: FromPath[str], data: JSONBody[RoleBody]) -> Done:
    """Applies from the next request made with the key."""
    found = await change_api_key(ctx.store, id_or_name, role=data.role)
    return await _changed(ctx, found.id)


@put(
    "/api/api-keys/{id_or_name:str}/limits",
    tags=["api-keys"],
    responses=errors(changes=True, invalid=True, missing="API key"),
    summary="Replace a key's limits (null removes them)",
)
async def set_limits(ctx: Ctx, id_or_name: FromPath[str], data: JSONBody[LimitsChange]) -> Done:
    """Replaces every limit of the key at once; the proxy enforces them from the next
    request on (docs/keys.md)."""
    limits = limits_of(data.limits) if data.limits is not None else None
    found = await set_api_key_limits(ctx.store, id_or_name, limits)
    return await _changed(ctx, found.id)


@delete(
    "/api/api-keys/{id_or_name:str}",
    tags=["api-keys"],
    responses=errors(changes=True, missing="API key", conflict="it is the last active admin key"),
    summary="Delete a key",
    status_code=200,
)
async def delete_key(ctx: Ctx, id_or_name: FromPath[str]) -> dict[str, bool]:
    """Deletes the key, by id or name; answers ``{"success": true}``."""
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
