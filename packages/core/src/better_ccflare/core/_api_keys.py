"""Keys that clients present to the proxy (not upstream credentials)."""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = ["ApiKey", "ApiKeyRole", "KeyLimits", "KeyUsageTotals"]


class ApiKeyRole(StrEnum):
    ADMIN = "admin"
    """May use the proxy and the management API."""
    API_ONLY = "api-only"
    """May use only the proxy routes (``/v1/*``)."""


class KeyLimits(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What one key may use; every field is optional and ``None`` (or empty) means no limit.

    Budgets are in USD at the cost the proxy records for each request, over calendar periods in
    UTC: the day from midnight, the week from Monday midnight, the month from its first day.
    Tokens per minute count the input, cache-write and output tokens the upstream reports (not
    cache reads, which Anthropic's own per-minute input limits leave out too), over a sliding
    minute.
    """

    rpm: int | None = None
    """Requests per sliding minute."""
    tpm: int | None = None
    """Tokens (input, cache writes and output; see above) per sliding minute."""
    max_concurrent: int | None = None
    """Requests in flight at once; more wait in a bounded queue (see ``docs/keys.md``)."""
    budget_daily_usd: float | None = None
    budget_weekly_usd: float | None = None
    budget_monthly_usd: float | None = None
    models: tuple[str, ...] = ()
    """``fnmatch`` patterns (``claude-sonnet-*``) of the models the key may ask for; empty: any."""
    expires_at_ms: int | None = None
    """After this instant the key is refused with a 401 that says it expired."""

    @property
    def is_empty(self) -> bool:
        """Whether nothing is limited (such a key is stored without limits)."""
        return self == _NO_LIMITS


_NO_LIMITS = KeyLimits()


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
    limits: KeyLimits | None = None
    """``None`` for a key without limits: the proxy's hot path then checks nothing more."""


class KeyUsageTotals(msgspec.Struct, frozen=True, kw_only=True):
    """What one key's recorded requests add up to over some period."""

    requests: int = 0
    tokens: int = 0
    """Input, cache-write and output tokens: what :attr:`KeyLimits.tpm` counts."""
    cost_usd: float = 0.0
    """Requests whose cost is unknown add nothing."""
