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
    "DAY_MS",
    "FAILED",
    "FAILED_REQUESTS_INDEX",
    "HOUR_MS",
    "INDEXES",
    "ROLLUP_TABLES",
    "ROLLUP_TRIGGERS",
    "SUCCEEDED",
    "TABLES",
    "UNIQUE_ACCOUNT_INDEX",
    "Index",
    "Table",
    "floor_sql",
]


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]
    """(name, declaration) pairs, in order."""
    constraints: tuple[str, ...] = ()
    without_rowid: bool = False
    """Store rows in primary-key order (a clustered table) instead of by rowid."""

    def create_sql(self) -> str:
        parts = [f"{name} {decl}" for name, decl in self.columns] + list(self.constraints)
        suffix = " WITHOUT ROWID" if self.without_rowid else ""
        return (
            f"CREATE TABLE IF NOT EXISTS {self.name} (\n  " + ",\n  ".join(parts) + f"\n){suffix}"
        )


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
        # Ours, not the reference's: the circuit breaker's streak (migration 7).
        ("consecutive_failures", "INTEGER NOT NULL DEFAULT 0"),
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
        # Ours (migration 0008): the key's KeyLimits as JSON, NULL for none.
        ("limits", "TEXT"),
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
SUCCEEDED = "COALESCE(success, 0) <> 0"
"""A successful request (``success`` holds 0/1, but reference rows may hold anything)."""

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

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def floor_sql(column: str, period_ms: int) -> str:
    """``floor(column / period) * period`` in SQL, also for negative values (``%`` truncates)."""
    return f"({column} - (({column} % {period_ms}) + {period_ms}) % {period_ms})"


# Ours, from migration 0005: request history pre-aggregated per hour and per day (see _rollups).
REQUEST_ROLLUPS = Table(
    "request_rollups",
    (
        ("period_ms", "INTEGER NOT NULL"),  # HOUR_MS or DAY_MS
        ("start_ms", "INTEGER NOT NULL"),
        # WITHOUT ROWID needs a non-NULL primary key, and the grouped columns can be NULL; so a
        # period's rows are numbered instead.
        ("seq", "INTEGER NOT NULL"),
        ("account_used", "TEXT"),
        ("model", "TEXT"),
        ("api_key_id", "TEXT"),
        ("success", "INTEGER NOT NULL"),
        ("plan", "INTEGER NOT NULL"),
        ("requests", "INTEGER NOT NULL"),
        ("input_tokens", "INTEGER NOT NULL"),
        ("output_tokens", "INTEGER NOT NULL"),
        ("cache_read_tokens", "INTEGER NOT NULL"),
        ("cache_write_tokens", "INTEGER NOT NULL"),
        ("cost_usd", "REAL NOT NULL"),
        ("response_time_ms_sum", "INTEGER"),
        ("response_time_ms_count", "INTEGER NOT NULL"),
        ("output_tokens_per_second_sum", "REAL NOT NULL"),
        ("output_tokens_per_second_count", "INTEGER NOT NULL"),
        # Migration 0006: requests whose cost is unknown (no price for their model); every
        # request before it had a cost.
        ("unpriced_requests", "INTEGER NOT NULL DEFAULT 0"),
    ),
    ("PRIMARY KEY (period_ms, start_ms, seq)",),
    without_rowid=True,
)

REQUEST_ROLLUP_STATE = Table(
    "request_rollup_state",
    (
        ("id", "INTEGER PRIMARY KEY CHECK (id = 1)"),
        # Every hour before this one is rolled up, except the stale ones; NULL: none is.
        ("rolled_until_ms", "INTEGER"),
    ),
)

REQUEST_ROLLUP_STALE = Table(
    "request_rollup_stale",
    (("hour_start_ms", "INTEGER PRIMARY KEY"),),
)
"""Rolled-up hours whose requests changed since; read raw until the next refresh."""

ROLLUP_TABLES = (REQUEST_ROLLUPS, REQUEST_ROLLUP_STATE, REQUEST_ROLLUP_STALE)

_ROLLED_UNTIL = "(SELECT rolled_until_ms FROM request_rollup_state)"


def _mark_stale(row: str) -> str:
    # Not INSERT OR IGNORE: inside a trigger, the outer statement's conflict policy (the
    # upsert's) would replace the IGNORE.
    hour = floor_sql(f"{row}.timestamp", HOUR_MS)
    return (
        f"INSERT INTO request_rollup_stale SELECT {hour} WHERE {row}.timestamp < {_ROLLED_UNTIL} "  # noqa: S608 (fixed fragments)
        f"AND NOT EXISTS (SELECT 1 FROM request_rollup_stale WHERE hour_start_ms = {hour});"
    )


ROLLUP_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS request_rollups_insert AFTER INSERT ON requests "
    f"WHEN NEW.timestamp < {_ROLLED_UNTIL} BEGIN {_mark_stale('NEW')} END",
    "CREATE TRIGGER IF NOT EXISTS request_rollups_update AFTER UPDATE ON requests "
    f"WHEN MIN(OLD.timestamp, NEW.timestamp) < {_ROLLED_UNTIL} "
    f"BEGIN {_mark_stale('OLD')} {_mark_stale('NEW')} END",
    "CREATE TRIGGER IF NOT EXISTS request_rollups_delete AFTER DELETE ON requests "
    f"WHEN OLD.timestamp < {_ROLLED_UNTIL} BEGIN {_mark_stale('OLD')} END",
)
"""Any change to a request in a rolled-up hour marks that hour stale, whoever makes it (the
proxy's late completions, retention, another process), so queries stay exact between refreshes."""
