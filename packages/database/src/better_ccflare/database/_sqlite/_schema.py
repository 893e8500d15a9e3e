"""The tables and indexes this package uses, declared once.

Column names, types and defaults follow the reference better-ccflare schema, so that one of its
database files is read as it is and can still be opened by the reference afterwards: timestamps
are epoch-millisecond INTEGERs and booleans are 0/1 INTEGERs. Columns the reference has but the
core types do not use (``model_fallbacks``, ``combo_name``, ...) are declared too, so a fresh
database has the reference's full shape. Our own additions are marked below.

The same declarations serve two purposes: ``CREATE TABLE`` for a missing table, and
``ALTER TABLE ... ADD COLUMN`` for a column that an older reference database lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ANALYTICS_INDEXES",
    "FAILED",
    "FAILED_REQUESTS_INDEX",
    "INDEXES",
    "TABLES",
    "UNIQUE_ACCOUNT_INDEX",
    "Index",
    "Table",
]


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]
    """(name, declaration) pairs, in order."""
    constraints: tuple[str, ...] = ()

    def create_sql(self) -> str:
        parts = [f"{name} {decl}" for name, decl in self.columns] + list(self.constraints)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n  " + ",\n  ".join(parts) + "\n)"


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    table: str
    expression: str
    unique: bool = False
    where: str | None = None
    """Makes it a partial index: only rows matching this condition are indexed."""

    def create_sql(self) -> str:
        unique = "UNIQUE " if self.unique else ""
        where = f" WHERE {self.where}" if self.where else ""
        return (
            f"CREATE {unique}INDEX IF NOT EXISTS {self.name} ON {self.table}({self.expression})"
            f"{where}"
        )


ACCOUNTS = Table(
    "accounts",
    (
        ("id", "TEXT PRIMARY KEY"),
        ("name", "TEXT NOT NULL"),
        ("provider", "TEXT DEFAULT 'anthropic'"),
        ("api_key", "TEXT"),
        ("refresh_token", "TEXT"),
        ("access_token", "TEXT"),
        ("expires_at", "INTEGER"),
        ("created_at", "INTEGER NOT NULL"),
        ("last_used", "INTEGER"),
        ("request_count", "INTEGER DEFAULT 0"),
        ("total_requests", "INTEGER DEFAULT 0"),
        ("priority", "INTEGER DEFAULT 0"),
        ("rate_limited_until", "INTEGER"),
        ("session_start", "INTEGER"),
        ("session_request_count", "INTEGER DEFAULT 0"),
        ("paused", "INTEGER DEFAULT 0"),
        ("rate_limit_reset", "INTEGER"),
        ("rate_limit_status", "TEXT"),
        ("rate_limit_remaining", "INTEGER"),
        ("auto_fallback_enabled", "INTEGER DEFAULT 0"),
        ("custom_endpoint", "TEXT"),
        ("auto_refresh_enabled", "INTEGER DEFAULT 0"),
        ("model_mappings", "TEXT"),
        ("model_fallbacks", "TEXT"),
        ("cross_region_mode", "TEXT DEFAULT 'geographic'"),
        ("auto_pause_on_overage_enabled", "INTEGER DEFAULT 0"),
        ("peak_hours_pause_enabled", "INTEGER NOT NULL DEFAULT 0"),
        ("pause_reason", "TEXT"),
        ("requires_reauth", "INTEGER DEFAULT 0"),
        ("billing_type", "TEXT"),
        ("refresh_token_issued_at", "INTEGER"),
        ("rate_limited_reason", "TEXT"),
        ("rate_limited_at", "INTEGER"),
        ("consecutive_rate_limits", "INTEGER NOT NULL DEFAULT 0"),
    ),
)

REQUESTS = Table(
    "requests",
    (
        ("id", "TEXT PRIMARY KEY"),
        ("timestamp", "INTEGER NOT NULL"),
        ("method", "TEXT NOT NULL"),
        ("path", "TEXT NOT NULL"),
        ("account_used", "TEXT"),
        ("status_code", "INTEGER"),
        ("success", "BOOLEAN"),
        ("error_message", "TEXT"),
        ("response_time_ms", "INTEGER"),
        ("failover_attempts", "INTEGER DEFAULT 0"),
        ("model", "TEXT"),
        ("prompt_tokens", "INTEGER DEFAULT 0"),
        ("completion_tokens", "INTEGER DEFAULT 0"),
        ("total_tokens", "INTEGER DEFAULT 0"),
        ("cost_usd", "REAL DEFAULT 0"),
        ("output_tokens_per_second", "REAL"),
        ("input_tokens", "INTEGER DEFAULT 0"),
        ("cache_read_input_tokens", "INTEGER DEFAULT 0"),
        # The total of 5-minute and 1-hour cache writes, as in the reference.
        ("cache_creation_input_tokens", "INTEGER DEFAULT 0"),
        ("output_tokens", "INTEGER DEFAULT 0"),
        ("agent_used", "TEXT"),
        ("api_key_id", "TEXT"),
        ("api_key_name", "TEXT"),
        ("project", "TEXT"),
        ("billing_type", "TEXT DEFAULT 'api'"),
        ("combo_name", "TEXT"),
        ("original_model", "TEXT"),
        ("applied_model", "TEXT"),
        ("project_attribution_source", "TEXT"),
        ("agent_attribution_source", "TEXT"),
        ("stream_terminal_state", "TEXT"),
        ("client_session_id", "TEXT"),
        # Ours: the 1-hour share of cache_creation_input_tokens (priced differently). Reference
        # rows read 0 here, so all their cache writes count as 5-minute ones.
        ("cache_creation_1h_input_tokens", "INTEGER DEFAULT 0"),
    ),
)

REQUEST_PAYLOADS = Table(
    "request_payloads",
    (
        ("id", "TEXT PRIMARY KEY"),
        ("json", "TEXT NOT NULL"),
        ("timestamp", "INTEGER"),
    ),
    ("FOREIGN KEY (id) REFERENCES requests(id) ON DELETE CASCADE",),
)

OAUTH_SESSIONS = Table(
    "oauth_sessions",
    (
        ("id", "TEXT PRIMARY KEY"),
        ("account_name", "TEXT NOT NULL"),
        ("verifier", "TEXT NOT NULL"),
        ("mode", "TEXT NOT NULL"),
        ("custom_endpoint", "TEXT"),
        ("priority", "INTEGER DEFAULT 0"),
        ("created_at", "INTEGER NOT NULL"),
        ("expires_at", "INTEGER NOT NULL"),
    ),
)

API_KEYS = Table(
    "api_keys",
    (
        ("id", "TEXT PRIMARY KEY"),
        ("name", "TEXT NOT NULL UNIQUE"),
        ("hashed_key", "TEXT NOT NULL UNIQUE"),
        ("prefix_last_8", "TEXT NOT NULL"),
        ("created_at", "INTEGER NOT NULL"),
        ("last_used", "INTEGER"),
        ("usage_count", "INTEGER DEFAULT 0"),
        ("is_active", "INTEGER DEFAULT 1"),
        ("role", "TEXT NOT NULL DEFAULT 'api-only'"),
    ),
)

AGENT_PREFERENCES = Table(
    "agent_preferences",
    (
        ("agent_id", "TEXT PRIMARY KEY"),
        ("model", "TEXT NOT NULL"),
        ("updated_at", "INTEGER NOT NULL"),
    ),
)

STRATEGIES = Table(
    "strategies",
    (
        ("name", "TEXT PRIMARY KEY"),
        ("config", "TEXT NOT NULL"),
        ("updated_at", "INTEGER NOT NULL"),
    ),
)

USAGE_SNAPSHOTS = Table(
    "usage_snapshots",
    (
        ("account_id", "TEXT NOT NULL"),
        ("timestamp", "INTEGER NOT NULL"),
        ("window_key", "TEXT NOT NULL"),
        ("utilization", "REAL"),
        ("resets_at", "INTEGER"),
    ),
)

TABLES = (
    ACCOUNTS,
    REQUESTS,
    REQUEST_PAYLOADS,
    OAUTH_SESSIONS,
    API_KEYS,
    AGENT_PREFERENCES,
    STRATEGIES,
    USAGE_SNAPSHOTS,
)

UNIQUE_ACCOUNT_INDEX = Index(
    "idx_accounts_unique_name_provider_endpoint",
    "accounts",
    "name, provider, COALESCE(custom_endpoint, '')",
    unique=True,
)

INDEXES = (
    # History pages, newest first, overall and per account; retention deletes by age.
    Index("idx_requests_timestamp", "requests", "timestamp"),
    Index("idx_requests_account_timestamp", "requests", "account_used, timestamp"),
    Index("idx_request_payloads_timestamp", "request_payloads", "timestamp"),
    Index("idx_oauth_sessions_expires", "oauth_sessions", "expires_at"),
    Index(
        "idx_usage_snapshots_acct_win_time", "usage_snapshots", "account_id, window_key, timestamp"
    ),
    Index("idx_usage_snapshots_acct_time", "usage_snapshots", "account_id, timestamp"),
    Index("idx_usage_snapshots_ts", "usage_snapshots", "timestamp"),
)

FAILED = "COALESCE(success, 0) = 0"
"""A failed request. Queries spell it exactly so, or SQLite cannot use the partial index below."""

FAILED_REQUESTS_INDEX = Index(
    "idx_requests_failed",
    "requests",
    "timestamp, account_used, model, api_key_id, status_code, error_message, success",
    where=FAILED,
)
"""Failed requests only (a few percent of rows), holding every column error grouping and the
analytics filters read, so grouping errors reads neither successes nor the table."""

ANALYTICS_INDEXES = (
    # Filtered analytics and history pages: each filter's rows in time order, so a range is one
    # index search and "newest first" needs no sort. Partial, because the column is often NULL
    # (no proxy keys, clients without sessions); the model one has the reference's definition.
    Index(
        "idx_requests_model_timestamp", "requests", "model, timestamp", where="model IS NOT NULL"
    ),
    Index(
        "idx_requests_api_key_timestamp",
        "requests",
        "api_key_id, timestamp",
        where="api_key_id IS NOT NULL",
    ),
    Index(
        "idx_requests_client_session",
        "requests",
        "client_session_id, timestamp",
        where="client_session_id IS NOT NULL",
    ),
    FAILED_REQUESTS_INDEX,
)
"""Added by migration 0004 (and so present in every migrated database)."""
