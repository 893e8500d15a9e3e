"""What the layers above may ask of the store, table by table, independent of the backend.

These protocols speak only core types. The SQLite implementation lives in ``_sqlite``; a
PostgreSQL one can implement the same protocols without the proxy, HTTP API or CLI noticing.

Two kinds of write appear here. ``async`` methods return once the write is committed (or raise).
Plain methods returning ``None`` are fire-and-forget: they queue the write and return at once,
never blocking the caller; they are for the request hot path, and a failure is logged by the
store rather than raised. :meth:`Store.flush` waits until everything queued so far is committed.

Methods that change one named row raise :class:`~better_ccflare.core.NotFoundError` when it does
not exist, and :class:`~better_ccflare.core.ConflictError` when the change would break a
uniqueness rule.
"""

from __future__ import annotations

from typing import Protocol

from better_ccflare.core import (
    Account,
    AgentPreference,
    ApiKey,
    ApiKeyRole,
    BillingType,
    Credentials,
    KeyLimits,
    KeyUsageTotals,
    ModelMappings,
    OAuthSession,
    PauseReason,
    RateLimitState,
    RequestRecord,
    SessionPin,
    StrategySettings,
    UsageSnapshot,
)

__all__ = [
    "AccountRepository",
    "AgentPreferenceRepository",
    "ApiKeyRepository",
    "KeyFleetCounters",
    "OAuthSessionRepository",
    "RequestRepository",
    "SessionPinRepository",
    "StrategyRepository",
    "UsageRepository",
]


class AccountRepository(Protocol):
    """Upstream accounts. Credentials are plaintext here and encrypted in storage."""

    async def add(self, account: Account) -> None:
        """Store a new account, every field as given.

        Raises:
            ConflictError: the id is taken, or another account has the same name, provider and
                custom endpoint.
        """
        ...

    async def get(self, account_id: str) -> Account | None: ...

    async def get_by_name(self, name: str) -> Account | None:
        """The account called ``name``.

        Raises:
            ConflictError: several accounts (of different providers or endpoints) share the name.
        """
        ...

    async def list_all(self) -> list[Account]:
        """Every account, by priority (lowest first), then age."""
        ...

    async def delete(self, account_id: str) -> None: ...

    async def rename(self, account_id: str, name: str) -> None: ...

    async def set_priority(self, account_id: str, priority: int) -> None: ...

    async def pause(self, account_id: str, reason: PauseReason) -> None: ...

    async def resume(self, account_id: str) -> None:
        """Unpause, clearing the pause reason."""
        ...

    async def set_flags(
        self,
        account_id: str,
        *,
        auto_fallback: bool | None = None,
        auto_refresh: bool | None = None,
        auto_pause_on_overage: bool | None = None,
        peak_hours_pause: bool | None = None,
    ) -> None:
        """Turn the given toggles on or off; ``None`` leaves a toggle as it is."""
        ...

    async def set_custom_endpoint(self, account_id: str, endpoint: str | None) -> None: ...

    async def set_model_mappings(self, account_id: str, mappings: ModelMappings) -> None: ...

    async def set_billing_type(self, account_id: str, billing_type: BillingType | None) -> None: ...

    async def update_rate_limit(self, account_id: str, state: RateLimitState) -> None:
        """Replace the account's rate-limit state as a whole."""
        ...

    def record_rate_limit_reading_nowait(self, account_id: str, state: RateLimitState) -> None:
        """Store ``state``'s reading (``status``, ``reset_at_ms``, ``remaining``), fire-and-forget.

        The cooldown fields are left as stored, so a reading written late never undoes a
        cooldown changed meanwhile; an account that no longer exists is skipped.
        """
        ...

    async def record_use(self, account_id: str, now_ms: int, session_duration_ms: int) -> None:
        """Count a request on the account and roll its session.

        Increments ``request_count`` and ``total_requests`` and sets ``last_used``. A new session
        starts (with a count of one) when there is none or the current one began at least
        ``session_duration_ms`` before ``now_ms``.
        """
        ...

    def record_use_nowait(self, account_id: str, now_ms: int, session_duration_ms: int) -> None:
        """:meth:`record_use`, fire-and-forget."""
        ...

    async def reset_session(self, account_id: str, now_ms: int) -> None:
        """Start a fresh session at ``now_ms`` with no requests counted."""
        ...

    async def set_credentials(self, account_id: str, credentials: Credentials) -> None:
        """Replace the credentials after a new login; also clears ``requires_reauth``."""
        ...

    async def update_credentials_if_refresh_token_matches(
        self, account_id: str, expected_refresh_token: str | None, credentials: Credentials
    ) -> bool:
        """Compare-and-swap for token refresh.

        Replaces the credentials only if the stored refresh token still equals
        ``expected_refresh_token`` (``None`` matches an account without one), so that of two
        concurrent refreshes only the first one's tokens are kept.

        Returns:
            Whether the credentials were replaced. ``False`` also for an unknown account.
        """
        ...

    async def mark_requires_reauth_if_refresh_token_matches(
        self, account_id: str, refresh_token: str | None
    ) -> bool:
        """Flag the account for re-login, unless its refresh token changed in the meantime.

        Returns:
            Whether the flag was set.
        """
        ...

    async def clear_expired_rate_limits(self, now_ms: int) -> int:
        """End every cooldown whose ``limited_until_ms`` has passed; returns how many ended."""
        ...


class RequestRepository(Protocol):
    """Request history and the stored request/response bodies."""

    def record(self, record: RequestRecord) -> None:
        """Queue an upsert of the request row (fire-and-forget).

        Recording the same id again completes the row: the later record's values win, except
        that a ``None`` never erases a value already stored.
        """
        ...

    def record_payload(self, request_id: str, payload_json: bytes | str) -> bool:
        """Queue the request's payload JSON (fire-and-forget), after :meth:`record` of its row.

        Returns:
            ``False`` when the payload was dropped because too many payload bytes are already
            waiting to be written; the drop is counted in :meth:`Store.stats`.
        """
        ...

    async def get(self, request_id: str) -> RequestRecord | None: ...

    async def list_recent(
        self, limit: int, *, account_id: str | None = None, before_ms: int | None = None
    ) -> list[RequestRecord]:
        """Newest first; ``before_ms`` pages backwards (rows strictly older than it)."""
        ...

    async def get_payload(self, request_id: str) -> str | None: ...

    async def count(self) -> int: ...

    async def delete_all(self) -> int:
        """Reset statistics: delete every request (and payload) and zero the accounts' counts.

        Returns:
            How many requests were deleted.
        """
        ...


class ApiKeyRepository(Protocol):
    """Keys clients present to the proxy (stored hashed)."""

    async def add(self, key: ApiKey) -> None:
        """Raises ConflictError when the id, name or hash is taken."""
        ...

    async def list_all(self) -> list[ApiKey]: ...

    async def list_active(self) -> list[ApiKey]: ...

    async def get(self, id_or_name: str) -> ApiKey | None:
        """By id, or else by name."""
        ...

    async def set_active(self, key_id: str, active: bool) -> None: ...

    async def set_role(self, key_id: str, role: ApiKeyRole) -> None: ...

    async def delete(self, key_id: str) -> None: ...

    def touch(self, key_id: str, now_ms: int) -> None:
        """Count a use of the key (fire-and-forget)."""
        ...

    async def count_active(self, role: ApiKeyRole | None = None) -> int: ...

    async def set_limits(self, key_id: str, limits: KeyLimits | None) -> None:
        """Replace the key's limits; ``None`` or empty limits remove them."""
        ...

    async def usage_since(self, since_ms: int) -> dict[str, KeyUsageTotals]:
        """What each key's recorded requests from ``since_ms`` on add up to, by key id; keys
        without any are absent. Backed by the ``(api_key_id, timestamp)`` index."""
        ...


class KeyFleetCounters(Protocol):
    """Per-key counts every instance sharing the store sees (PostgreSQL only)."""

    async def take_minute(self, key_id: str, minute: int, limit: int) -> bool:
        """Count one request of ``key_id`` in ``minute`` (epoch minutes) unless ``limit`` were
        passed; returns whether it was counted. Atomic across instances."""
        ...

    async def enter(self, key_id: str, limit: int, now_ms: int) -> bool:
        """Count one more request of ``key_id`` in flight on this instance unless the fleet's
        live instances have ``limit`` in flight; returns whether it was counted."""
        ...

    def leave(self, key_id: str, now_ms: int) -> None:
        """One request counted by :meth:`enter` is over (fire-and-forget)."""
        ...

    async def heartbeat(self, now_ms: int) -> None:
        """Keep this instance's in-flight counts alive; call every second or so."""
        ...


class OAuthSessionRepository(Protocol):
    """Pending PKCE logins."""

    async def create(self, session: OAuthSession) -> None:
        """Raises ConflictError when the id is taken."""
        ...

    async def get(self, session_id: str, now_ms: int) -> OAuthSession | None:
        """The session, or ``None`` when unknown or expired at ``now_ms``."""
        ...

    async def delete(self, session_id: str) -> None:
        """Forget the session; deleting an unknown one is not an error."""
        ...

    async def delete_expired(self, now_ms: int) -> int: ...


class AgentPreferenceRepository(Protocol):
    """Per-agent model overrides."""

    async def set(self, preference: AgentPreference) -> None:
        """Create or replace the agent's preference."""
        ...

    async def get(self, agent_id: str) -> AgentPreference | None: ...

    async def list_all(self) -> list[AgentPreference]: ...

    async def delete(self, agent_id: str) -> None: ...


class StrategyRepository(Protocol):
    """Stored per-strategy settings."""

    async def get(self, name: str) -> StrategySettings | None: ...

    async def set(self, settings: StrategySettings) -> None:
        """Create or replace the settings of ``settings.name``."""
        ...


class UsageRepository(Protocol):
    """History of the providers' usage windows."""

    async def record(self, snapshot: UsageSnapshot) -> None:
        """Append the snapshot (one stored row per window)."""
        ...

    async def latest(self, account_id: str) -> UsageSnapshot | None:
        """The account's most recent snapshot."""
        ...

    async def series(
        self, account_id: str, since_ms: int, window_key: str | None = None
    ) -> list[UsageSnapshot]:
        """Snapshots at or after ``since_ms``, oldest first; optionally only one window."""
        ...

    async def delete_older_than(self, cutoff_ms: int) -> int: ...


class SessionPinRepository(Protocol):
    """Which account each client session keeps to under ``session-affinity``: stored so that
    every instance over one database keeps a session on the same account."""

    def save_nowait(self, pin: SessionPin, now_ms: int) -> None:
        """Store ``pin`` unless the stored pin of its session runs longer (equal ends: the
        greater account id stays), and forget the pins expired at ``now_ms``; fire-and-forget.

        On PostgreSQL a pin stored is announced to every listener (:meth:`Store.listen`).
        """
        ...

    async def list_live(self, now_ms: int) -> list[SessionPin]:
        """The pins that have not expired at ``now_ms``."""
        ...
