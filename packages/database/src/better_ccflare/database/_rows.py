"""Rows to core types and back, table by table, the same for every backend.

Both backends store the same columns under the same names, so what a row means is written once:
the values an insert binds, in column order, and the core value a selected row becomes. A row is
anything indexable by column name (``sqlite3.Row``, a psycopg dict row). Reads are forgiving
(see :mod:`._values`); credentials are sealed on the way in and opened on the way out.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from typing import Any, Literal, Protocol

import msgspec

from better_ccflare.core import (
    Account,
    AgentAttributionSource,
    AgentPreference,
    ApiKey,
    ApiKeyRole,
    BillingType,
    ConflictError,
    Credentials,
    KeyLimits,
    KeyUsageTotals,
    OAuthMode,
    OAuthSession,
    PauseReason,
    ProviderKind,
    RateLimitReason,
    RateLimitState,
    RequestRecord,
    SessionState,
    StrategySettings,
    StreamTerminalState,
    TokenUsage,
    UsageSnapshot,
    UsageWindow,
)

from ._crypto import SecretKey
from ._values import (
    decode_json_object,
    enum_or_none,
    mappings_from_json,
    mappings_to_json,
    open_secret,
    seal_secret,
)

__all__ = [
    "ACCOUNT_COLUMNS",
    "ACCOUNT_ORDER",
    "API_KEY_COLUMNS",
    "CLEAR_REJECTION",
    "CREDENTIAL_COLUMNS",
    "KEY_USAGE_SQL",
    "OAUTH_SESSION_COLUMNS",
    "REQUEST_COLUMNS",
    "REQUEST_KEEP_WHEN_NULL",
    "USAGE_SNAPSHOT_COLUMNS",
    "Placeholders",
    "Row",
    "account_conflict",
    "account_from_row",
    "account_values",
    "agent_preference_from_row",
    "api_key_conflict",
    "api_key_from_row",
    "api_key_values",
    "credential_values",
    "insert_sql",
    "key_usage_from_rows",
    "limits_text",
    "oauth_session_from_row",
    "oauth_session_values",
    "request_from_row",
    "request_upsert_sql",
    "request_values",
    "snapshot_values",
    "snapshots_from_rows",
    "strategy_from_row",
]

_log = logging.getLogger("better_ccflare.database")


class Row(Protocol):
    """A selected row: its columns by name."""

    def __getitem__(self, column: str, /) -> Any: ...


Placeholders = Literal["qmark", "numeric"]
"""How a driver marks parameters: ``?`` (sqlite3) or ``$1``, ``$2``, ... (asyncpg)."""


def insert_sql(table: str, columns: tuple[str, ...], style: Placeholders) -> str:
    """``INSERT INTO table (columns) VALUES (...)`` with the driver's placeholders."""
    marks = ["?" if style == "qmark" else f"${number}" for number in range(1, len(columns) + 1)]
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(marks)})"  # noqa: S608 (fixed names)


ACCOUNT_COLUMNS = (
    "id",
    "name",
    "provider",
    "api_key",
    "access_token",
    "refresh_token",
    "expires_at",
    "refresh_token_issued_at",
    "created_at",
    "last_used",
    "request_count",
    "total_requests",
    "priority",
    "paused",
    "pause_reason",
    "requires_reauth",
    "rate_limit_status",
    "rate_limit_reset",
    "rate_limit_remaining",
    "rate_limited_until",
    "rate_limited_reason",
    "rate_limited_at",
    "consecutive_rate_limits",
    "consecutive_failures",
    "session_start",
    "session_request_count",
    "auto_fallback_enabled",
    "auto_refresh_enabled",
    "auto_pause_on_overage_enabled",
    "peak_hours_pause_enabled",
    "custom_endpoint",
    "model_mappings",
    "billing_type",
)
"""What :func:`account_values` binds, in order."""


ACCOUNT_ORDER = "ORDER BY priority, created_at, id"
"""Lowest priority number first, then oldest: the order the strategies and the dashboard expect."""


def account_conflict(what: str) -> ConflictError:
    """What a backend raises when an account's id, or name for its provider and endpoint, is
    taken."""
    return ConflictError(
        f"{what}: another account already has this id, or this name for the same provider and "
        "custom endpoint. Choose another name."
    )


def account_values(account: Account, key: SecretKey) -> tuple[object, ...]:
    credentials = account.credentials
    rate_limit = account.rate_limit
    return (
        account.id,
        account.name,
        account.provider,
        seal_secret(credentials.api_key, key),
        seal_secret(credentials.access_token, key),
        seal_secret(credentials.refresh_token, key),
        credentials.expires_at_ms,
        credentials.refresh_token_issued_at_ms,
        account.created_at_ms,
        account.last_used_ms,
        account.request_count,
        account.total_requests,
        account.priority,
        account.paused,
        _text(account.pause_reason),
        account.requires_reauth,
        rate_limit.status,
        rate_limit.reset_at_ms,
        rate_limit.remaining,
        rate_limit.limited_until_ms,
        _text(rate_limit.reason),
        rate_limit.limited_at_ms,
        rate_limit.consecutive,
        rate_limit.failures,
        account.session.started_at_ms,
        account.session.request_count,
        account.auto_fallback_enabled,
        account.auto_refresh_enabled,
        account.auto_pause_on_overage_enabled,
        account.peak_hours_pause_enabled,
        account.custom_endpoint,
        mappings_to_json(account.model_mappings),
        _text(account.billing_type),
    )


CREDENTIAL_COLUMNS = (
    "api_key",
    "access_token",
    "refresh_token",
    "expires_at",
    "refresh_token_issued_at",
)
"""What :func:`credential_values` binds, in order."""

CLEAR_REJECTION = (
    "rate_limited_until = CASE WHEN rate_limited_reason = 'credentials_rejected' "
    "THEN NULL ELSE rate_limited_until END, "
    "consecutive_failures = CASE WHEN rate_limited_reason = 'credentials_rejected' "
    "THEN 0 ELSE consecutive_failures END"
)
"""``SET`` assignments for new credentials: they answer a rejection of the old ones, so that
bench ends and the failure streak starts over."""


def credential_values(credentials: Credentials, key: SecretKey) -> tuple[object, ...]:
    return (
        seal_secret(credentials.api_key, key),
        seal_secret(credentials.access_token, key),
        seal_secret(credentials.refresh_token, key),
        credentials.expires_at_ms,
        credentials.refresh_token_issued_at_ms,
    )


def account_from_row(row: Row, key: SecretKey) -> Account:
    """Build an :class:`Account` from a row, tolerating NULLs and unknown values."""
    return Account(
        id=row["id"],
        name=row["name"],
        provider=ProviderKind.CLAUDE_OAUTH.value if row["provider"] is None else row["provider"],
        created_at_ms=row["created_at"],
        credentials=Credentials(
            api_key=open_secret(row["api_key"], key),
            access_token=open_secret(row["access_token"], key),
            refresh_token=open_secret(row["refresh_token"], key),
            expires_at_ms=row["expires_at"],
            refresh_token_issued_at_ms=row["refresh_token_issued_at"],
        ),
        priority=row["priority"] or 0,
        paused=bool(row["paused"]),
        pause_reason=enum_or_none(PauseReason, row["pause_reason"]),
        requires_reauth=bool(row["requires_reauth"]),
        rate_limit=RateLimitState(
            status=row["rate_limit_status"],
            reset_at_ms=row["rate_limit_reset"],
            remaining=row["rate_limit_remaining"],
            limited_until_ms=row["rate_limited_until"],
            reason=enum_or_none(RateLimitReason, row["rate_limited_reason"]),
            limited_at_ms=row["rate_limited_at"],
            consecutive=row["consecutive_rate_limits"] or 0,
            failures=row["consecutive_failures"] or 0,
        ),
        session=SessionState(
            started_at_ms=row["session_start"],
            request_count=row["session_request_count"] or 0,
        ),
        last_used_ms=row["last_used"],
        request_count=row["request_count"] or 0,
        total_requests=row["total_requests"] or 0,
        auto_fallback_enabled=bool(row["auto_fallback_enabled"]),
        auto_refresh_enabled=bool(row["auto_refresh_enabled"]),
        auto_pause_on_overage_enabled=bool(row["auto_pause_on_overage_enabled"]),
        peak_hours_pause_enabled=bool(row["peak_hours_pause_enabled"]),
        custom_endpoint=row["custom_endpoint"],
        model_mappings=mappings_from_json(row["model_mappings"]),
        billing_type=enum_or_none(BillingType, row["billing_type"]),
    )


REQUEST_COLUMNS = (
    "id",
    "timestamp",
    "method",
    "path",
    "account_used",
    "status_code",
    "success",
    "error_message",
    "response_time_ms",
    "failover_attempts",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "output_tokens_per_second",
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens",
    "output_tokens",
    "agent_used",
    "agent_attribution_source",
    "api_key_id",
    "api_key_name",
    "project",
    "billing_type",
    "original_model",
    "applied_model",
    "stream_terminal_state",
    "client_session_id",
)
"""What :func:`request_values` binds, in order. Rows carry the reference's derived columns too
(``prompt_tokens``, ``completion_tokens``, ``total_tokens``) so its dashboards keep working, and
``cache_creation_input_tokens`` stays the total of all cache writes; the 1-hour share lives in
our own column ``cache_creation_1h_input_tokens``."""

REQUEST_KEEP_WHEN_NULL = frozenset(
    {
        "account_used",
        "status_code",
        "error_message",
        "response_time_ms",
        "model",
        "output_tokens_per_second",
        "agent_used",
        "agent_attribution_source",
        "api_key_id",
        "api_key_name",
        "project",
        "billing_type",
        "original_model",
        "applied_model",
        "stream_terminal_state",
        "client_session_id",
    }
)
"""Columns a later record of the same request may leave unknown: the upsert keeps the stored
value then."""


def request_upsert_sql(style: Placeholders) -> str:
    """Insert a request row, or complete the stored one: the later record's values win, except
    that a NULL never erases a stored value of :data:`REQUEST_KEEP_WHEN_NULL`."""
    updates = ", ".join(
        f"{column} = COALESCE(excluded.{column}, requests.{column})"
        if column in REQUEST_KEEP_WHEN_NULL
        else f"{column} = excluded.{column}"
        for column in REQUEST_COLUMNS[1:]
    )
    return (
        f"{insert_sql('requests', REQUEST_COLUMNS, style)} ON CONFLICT (id) DO UPDATE SET {updates}"
    )


def request_values(record: RequestRecord) -> tuple[object, ...]:
    """The row of ``record``, in :data:`REQUEST_COLUMNS` order. Built for every proxied request,
    so enums become strings inline rather than through :func:`_text`."""
    usage = record.usage
    return (
        record.id,
        record.timestamp_ms,
        record.method,
        record.path,
        record.account_id,
        record.status_code,
        record.success,
        record.error_message,
        record.response_time_ms,
        record.failover_attempts,
        record.model,
        usage.prompt_tokens,
        usage.output_tokens,
        usage.total_tokens,
        record.cost_usd,
        record.output_tokens_per_second,
        usage.input_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_write_1h_input_tokens,
        usage.output_tokens,
        record.agent_used,
        None if record.agent_attribution_source is None else str(record.agent_attribution_source),
        record.api_key_id,
        record.api_key_name,
        record.project,
        None if record.billing_type is None else str(record.billing_type),
        record.original_model,
        record.applied_model,
        None if record.stream_terminal_state is None else str(record.stream_terminal_state),
        record.client_session_id,
    )


def request_from_row(row: Row) -> RequestRecord:
    """Build a :class:`RequestRecord`; rows older than the token breakdown fall back to totals."""
    cache_writes = row["cache_creation_input_tokens"] or 0
    cache_writes_1h = row["cache_creation_1h_input_tokens"] or 0
    input_tokens = row["input_tokens"]
    output_tokens = row["output_tokens"]
    return RequestRecord(
        id=row["id"],
        timestamp_ms=row["timestamp"],
        method=row["method"] or "",
        path=row["path"] or "",
        account_id=row["account_used"],
        status_code=row["status_code"],
        success=bool(row["success"]),
        error_message=row["error_message"],
        response_time_ms=row["response_time_ms"],
        failover_attempts=row["failover_attempts"] or 0,
        model=row["model"],
        usage=TokenUsage(
            input_tokens=(row["prompt_tokens"] if input_tokens is None else input_tokens) or 0,
            output_tokens=(row["completion_tokens"] if output_tokens is None else output_tokens)
            or 0,
            cache_read_input_tokens=row["cache_read_input_tokens"] or 0,
            cache_write_5m_input_tokens=max(cache_writes - cache_writes_1h, 0),
            cache_write_1h_input_tokens=cache_writes_1h,
        ),
        cost_usd=row["cost_usd"],  # NULL: no price was known
        output_tokens_per_second=row["output_tokens_per_second"],
        agent_used=row["agent_used"],
        agent_attribution_source=enum_or_none(
            AgentAttributionSource, row["agent_attribution_source"]
        ),
        api_key_id=row["api_key_id"],
        api_key_name=row["api_key_name"],
        project=row["project"],
        billing_type=enum_or_none(BillingType, row["billing_type"]),
        original_model=row["original_model"],
        applied_model=row["applied_model"],
        stream_terminal_state=enum_or_none(StreamTerminalState, row["stream_terminal_state"]),
        client_session_id=row["client_session_id"],
    )


API_KEY_COLUMNS = (
    "id",
    "name",
    "hashed_key",
    "prefix_last_8",
    "created_at",
    "last_used",
    "usage_count",
    "is_active",
    "role",
    "limits",
)
"""What :func:`api_key_values` binds, in order."""


def api_key_values(key: ApiKey) -> tuple[object, ...]:
    return (
        key.id,
        key.name,
        key.hashed_key,
        key.prefix_last_8,
        key.created_at_ms,
        key.last_used_ms,
        key.usage_count,
        key.is_active,
        str(key.role),
        limits_text(key.limits),
    )


def limits_text(limits: KeyLimits | None) -> str | None:
    """A key's limits as the ``limits`` column keeps them (JSON); ``None`` when it has none."""
    if limits is None or limits.is_empty:
        return None
    return msgspec.json.encode(limits).decode()


KEY_USAGE_SQL = (
    "SELECT api_key_id, COUNT(*) AS requests, "
    "COALESCE(SUM(COALESCE(input_tokens, 0) + COALESCE(cache_creation_input_tokens, 0) "
    "+ COALESCE(output_tokens, 0)), 0) AS tokens, COALESCE(SUM(cost_usd), 0) AS cost_usd "
    "FROM requests WHERE api_key_id IS NOT NULL AND timestamp >= {since} GROUP BY api_key_id"
)
"""Each key's requests since ``{since}`` (a placeholder), as :func:`key_usage_from_rows` reads."""


def key_usage_from_rows(rows: Iterable[Row]) -> dict[str, KeyUsageTotals]:
    return {
        row["api_key_id"]: KeyUsageTotals(
            requests=int(row["requests"]),
            tokens=int(row["tokens"]),
            cost_usd=float(row["cost_usd"]),
        )
        for row in rows
    }


def _limits_of(text: str | None) -> KeyLimits | None:
    if not text:
        return None
    try:
        limits = msgspec.json.decode(text, type=KeyLimits)
    except (msgspec.ValidationError, msgspec.DecodeError):
        # Damaged, or written in a shape this version cannot read: refuse every model (a
        # pattern no model name matches, which the refusal shows) rather than lift the limits.
        return _UNREADABLE_LIMITS
    return None if limits.is_empty else limits


_UNREADABLE_LIMITS = KeyLimits(models=("(limits unreadable: an admin must set them again)",))


def api_key_conflict(key: ApiKey) -> ConflictError:
    return ConflictError(
        f"Cannot add API key {key.name!r}: an API key with this id, name or hash already "
        "exists. Choose another name."
    )


def api_key_from_row(row: Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        hashed_key=row["hashed_key"],
        prefix_last_8=row["prefix_last_8"],
        created_at_ms=row["created_at"],
        last_used_ms=row["last_used"],
        usage_count=row["usage_count"] or 0,
        is_active=bool(row["is_active"]),
        # An unknown role gets the least privilege.
        role=enum_or_none(ApiKeyRole, row["role"]) or ApiKeyRole.API_ONLY,
        limits=_limits_of(row["limits"]),
    )


OAUTH_SESSION_COLUMNS = (
    "id",
    "account_name",
    "verifier",
    "mode",
    "custom_endpoint",
    "priority",
    "created_at",
    "expires_at",
)
"""What :func:`oauth_session_values` binds, in order."""
# The reference accepted "max" as an alias of claude-oauth.
_MODE_ALIASES = {"max": OAuthMode.CLAUDE_OAUTH}


def oauth_session_values(session: OAuthSession, key: SecretKey) -> tuple[object, ...]:
    """The PKCE verifier is sealed like the account credentials: together with an intercepted
    authorization code it would be enough to log in."""
    return (
        session.id,
        session.account_name,
        key.encrypt(session.verifier),
        str(session.mode),
        session.custom_endpoint,
        session.priority,
        session.created_at_ms,
        session.expires_at_ms,
    )


def oauth_session_from_row(row: Row, key: SecretKey) -> OAuthSession | None:
    """The session, or ``None`` when its mode is unknown to this version (it cannot finish)."""
    mode = _MODE_ALIASES.get(row["mode"]) or enum_or_none(OAuthMode, row["mode"])
    if mode is None:
        _log.warning("Ignoring OAuth session %s with unknown mode %r.", row["id"], row["mode"])
        return None
    return OAuthSession(
        id=row["id"],
        account_name=row["account_name"],
        verifier=open_secret(row["verifier"], key) or "",
        mode=mode,
        created_at_ms=row["created_at"],
        expires_at_ms=row["expires_at"],
        custom_endpoint=row["custom_endpoint"],
        priority=row["priority"] or 0,
    )


def agent_preference_from_row(row: Row) -> AgentPreference:
    return AgentPreference(
        agent_id=row["agent_id"], model=row["model"], updated_at_ms=row["updated_at"] or 0
    )


def strategy_from_row(row: Row) -> StrategySettings:
    return StrategySettings(
        name=row["name"],
        config=decode_json_object(row["config"], "strategies.config"),
        updated_at_ms=row["updated_at"] or 0,
    )


USAGE_SNAPSHOT_COLUMNS = ("account_id", "timestamp", "window_key", "utilization", "resets_at")
"""What :func:`snapshot_values` binds, in order."""


def snapshot_values(snapshot: UsageSnapshot) -> list[tuple[object, ...]]:
    """One row per window, all with the snapshot's timestamp (the reference's layout)."""
    return [
        (
            snapshot.account_id,
            snapshot.timestamp_ms,
            window.key,
            window.utilization,
            window.resets_at_ms,
        )
        for window in snapshot.windows
    ]


def snapshots_from_rows(account_id: str, rows: Iterable[Row]) -> list[UsageSnapshot]:
    """Group rows ordered by timestamp into snapshots (a snapshot is stored as one row per
    window, all with its timestamp); windows without a utilization are skipped."""
    return [
        UsageSnapshot(
            account_id=account_id,
            timestamp_ms=timestamp_ms,
            windows=tuple(
                UsageWindow(
                    key=row["window_key"],
                    utilization=row["utilization"],
                    resets_at_ms=row["resets_at"],
                )
                for row in group
                if row["utilization"] is not None
            ),
        )
        for timestamp_ms, group in itertools.groupby(rows, key=lambda row: row["timestamp"])
    ]


def _text(value: str | None) -> str | None:
    """An enum member as its plain string value (drivers bind exact types)."""
    return None if value is None else str(value)
