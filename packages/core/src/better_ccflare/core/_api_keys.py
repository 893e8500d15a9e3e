"""Keys that clients present to the proxy (not upstream credentials)."""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = ["ApiKey", "ApiKeyRole"]


class ApiKeyRole(StrEnum):
    ADMIN = "admin"
    """May use the proxy and the management API."""
    API_ONLY = "api-only"
    """May use only the proxy routes (``/v1/*``)."""


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A stored proxy key. Only a salted hash of the key is kept; the key itself is shown once."""

    id: str
    name: str
    hashed_key: str
    """``hex(salt):hex(scrypt(key, salt))``, the reference's format."""
    prefix_last_8: str
    """The key's last eight characters, kept in clear to narrow candidates before hashing."""
    created_at_ms: int
    last_used_ms: int | None = None
    usage_count: int = 0
    is_active: bool = True
    role: ApiKeyRole = ApiKeyRole.API_ONLY
