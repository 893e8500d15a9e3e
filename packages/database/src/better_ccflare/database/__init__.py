"""better-ccflare's persistent state: SQLite or PostgreSQL behind typed, backend-neutral
repositories.

Open a :class:`Store` (a file path for SQLite, a ``postgresql://`` URL for PostgreSQL), use its
repositories (``store.accounts``, ``store.requests``, ...), close it on shutdown. Every write
goes through one batching writer and reads never block the event loop (SQLite's run on reader
threads, PostgreSQL's on an asynchronous driver). Upstream credentials are
encrypted at rest under a :class:`SecretKey` kept outside the database. The public surface is
exactly the union of the private modules' ``__all__`` lists.
"""

from ._analytics import (
    AnalyticsRepository,
    Dimension,
    ErrorGroup,
    GroupStats,
    Metrics,
    RequestFilter,
    SeriesPoint,
    Totals,
)
from ._backend import Backend
from ._coordination import FleetLease, FleetLockError
from ._copy import CopyError, CopyReport, TableCopy, copy_sqlite_to_postgres
from ._crypto import KEY_FILE_NAME, SecretKey, load_or_create_key
from ._errors import CredentialKeyError, SchemaError, StoreClosedError, StoreOpenError
from ._maintenance import RetentionResult, SchemaStatus, StoreMaintenance, StoreStats
from ._repositories import (
    AccountRepository,
    AgentPreferenceRepository,
    ApiKeyRepository,
    KeyFleetCounters,
    OAuthSessionRepository,
    RequestRepository,
    SessionPinRepository,
    StrategyRepository,
    UsageRepository,
)
from ._store import Store

__version__ = "0.1.0"

__all__ = [
    "KEY_FILE_NAME",
    "AccountRepository",
    "AgentPreferenceRepository",
    "AnalyticsRepository",
    "ApiKeyRepository",
    "Backend",
    "CopyError",
    "CopyReport",
    "CredentialKeyError",
    "Dimension",
    "ErrorGroup",
    "FleetLease",
    "FleetLockError",
    "GroupStats",
    "KeyFleetCounters",
    "Metrics",
    "OAuthSessionRepository",
    "RequestFilter",
    "RequestRepository",
    "RetentionResult",
    "SchemaError",
    "SchemaStatus",
    "SecretKey",
    "SeriesPoint",
    "SessionPinRepository",
    "Store",
    "StoreClosedError",
    "StoreMaintenance",
    "StoreOpenError",
    "StoreStats",
    "StrategyRepository",
    "TableCopy",
    "Totals",
    "UsageRepository",
    "copy_sqlite_to_postgres",
    "load_or_create_key",
]
