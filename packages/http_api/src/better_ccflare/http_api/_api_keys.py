"""``/api/api-keys``: the keys clients present to this proxy.

A new key is returned once, in the creation response, and never again. Every change calls
:meth:`~better_ccflare.proxy.ApiKeyAuthenticator.invalidate`, so it applies to the very next
request. The rules (first key admin, last active admin protected) live in
:mod:`better_ccflare.proxy.admin` so that the CLI enforces exactly the same ones.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import delete, get, patch, post
from litestar.params import FromPath, JSONBody

from better_ccflare.core import ApiKey, ApiKeyRole
from better_ccflare.proxy.admin import change_api_key, create_api_key

from ._api_context import Ctx, ManagementContext
from ._api_errors import ERROR_RESPONSES
from ._times import iso_ms

__all__ = ["API_KEY_HANDLERS"]


class KeyInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: str
    name: str
    prefix_last8: str
    created_at: str | None
    """ISO-8601 UTC, as the reference wrote it; ``createdAtMs`` in epoch ms."""
    created_at_ms: int
    last_used: str | None
    """ISO-8601 UTC, as the reference wrote it; ``lastUsedMs`` in epoch ms."""
    last_used_ms: int | None
    usage_count: int
    is_active: bool
    role: ApiKeyRole


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
    created_at_ms: int
    role: ApiKeyRole


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


class RoleBody(msgspec.Struct, frozen=True):
    role: ApiKeyRole


def _info(key: ApiKey) -> KeyInfo:
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
    )


@get(
    "/api/api-keys", responses=ERROR_RESPONSES, summary="Every proxy API key (never the key itself)"
)
async def list_keys(ctx: Ctx) -> KeyList:
    keys = await ctx.store.api_keys.list_all()
    return KeyList(success=True, data=[_info(k) for k in keys], count=len(keys))


@post(
    "/api/api-keys",
    responses=ERROR_RESPONSES,
    summary="Create a key; the response is the only time it is shown",
)
async def create_key(ctx: Ctx, data: JSONBody[CreateBody]) -> Created:
    key, plaintext = await create_api_key(
        ctx.store, data.name, data.role, now_ms=ctx.clock.now_ms()
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


API_KEY_HANDLERS = [list_keys, create_key, enable_key, disable_key, set_role, delete_key]
