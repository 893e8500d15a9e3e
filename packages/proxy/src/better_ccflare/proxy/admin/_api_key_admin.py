"""Creating and changing proxy API keys, with the rules that keep an admin able to get in.

The CLI and the management API both manage keys; both go through these functions so the rules
hold whichever way a key is changed: the first key is an admin key, and the last active admin
key can be neither disabled, demoted nor deleted (that would lock every admin out of ``/api``).
"""

from __future__ import annotations

import asyncio
import re
import uuid

from better_ccflare.core import (
    ApiKey,
    ApiKeyRole,
    ConflictError,
    InvalidInputError,
    KeyLimits,
    NotFoundError,
)
from better_ccflare.database import Store
from better_ccflare.proxy._api_key_hashing import generate_api_key, hash_api_key

from ._key_limits_admin import check_limits

__all__ = ["change_api_key", "create_api_key"]

_NAME = re.compile(r"[A-Za-z0-9 _.\-]{1,100}")


async def create_api_key(
    store: Store,
    name: str,
    role: ApiKeyRole | None,
    *,
    now_ms: int,
    limits: KeyLimits | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key; returns it with the plaintext key, which is never kept.

    ``role`` defaults to admin for the first key and api-only afterwards; ``limits`` are
    checked as :func:`~._key_limits_admin.check_limits` does.

    Raises:
        InvalidInputError: a bad name or limits, or an api-only first key.
        ConflictError: the name is taken.
    """
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise InvalidInputError(
            "name", "use 1-100 letters, digits, spaces, '-', '_' or '.' for the key's name"
        )
    first = await store.api_keys.count_active(ApiKeyRole.ADMIN) == 0
    if first and role is ApiKeyRole.API_ONLY:
        raise InvalidInputError(
            "role",
            "the first key must be an admin key (otherwise nobody could manage the proxy)",
        )
    checked = check_limits(limits) if limits is not None else None
    if await store.api_keys.get(name) is not None:
        raise ConflictError(f"An API key named {name!r} already exists.")
    chosen = role or (ApiKeyRole.ADMIN if first else ApiKeyRole.API_ONLY)
    plaintext = generate_api_key()
    hashed = await asyncio.to_thread(hash_api_key, plaintext)  # scrypt: slow on purpose
    key = ApiKey(
        id=str(uuid.uuid4()),
        name=name,
        hashed_key=hashed,
        prefix_last_8=plaintext[-8:],
        created_at_ms=now_ms,
        role=chosen,
        limits=None if checked is None or checked.is_empty else checked,
    )
    await store.api_keys.add(key)
    return key, plaintext


async def change_api_key(
    store: Store,
    id_or_name: str,
    *,
    active: bool | None = None,
    role: ApiKeyRole | None = None,
    delete: bool = False,
) -> ApiKey:
    """Enable, disable, change the role of, or delete a key; returns the key as it was found.

    Raises:
        NotFoundError: no key has that id or name.
        ConflictError: the change would leave no active admin key.
    """
    found = await store.api_keys.get(id_or_name)
    if found is None:
        raise NotFoundError("API key", id_or_name)
    was_admin = found.is_active and found.role is ApiKeyRole.ADMIN
    stays_admin = (
        not delete
        and (found.is_active if active is None else active)
        and (role or found.role) is ApiKeyRole.ADMIN
    )
    if was_admin and not stays_admin and await store.api_keys.count_active(ApiKeyRole.ADMIN) == 1:
        raise ConflictError(
            f"{found.name!r} is the last active admin key; create another admin key first."
        )
    if delete:
        await store.api_keys.delete(found.id)
        return found
    if active is not None:
        await store.api_keys.set_active(found.id, active)
    if role is not None:
        await store.api_keys.set_role(found.id, role)
    return found
