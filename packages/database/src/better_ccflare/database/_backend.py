"""What a storage backend provides: the repositories, the housekeeping and the fleet-wide locks,
as one protocol.

:class:`~better_ccflare.database.Store` takes any backend that satisfies it, so the SQLite
backend, a server-database backend and test doubles all stand behind the same object.
"""

from __future__ import annotations

from typing import Protocol

from ._analytics import AnalyticsRepository
from ._coordination import Coordination
from ._maintenance import StoreMaintenance
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

__all__ = ["Backend"]


class Backend(StoreMaintenance, Coordination, Protocol):
    """One repository per table plus the store's lifecycle, housekeeping, and the locks that
    instances sharing the database coordinate through.

    The repositories are read-only here so that a backend may hold its own concrete types.
    """

    @property
    def accounts(self) -> AccountRepository: ...

    @property
    def requests(self) -> RequestRepository: ...

    @property
    def api_keys(self) -> ApiKeyRepository: ...

    @property
    def oauth_sessions(self) -> OAuthSessionRepository: ...

    @property
    def agent_preferences(self) -> AgentPreferenceRepository: ...

    @property
    def strategies(self) -> StrategyRepository: ...

    @property
    def session_pins(self) -> SessionPinRepository: ...

    @property
    def usage(self) -> UsageRepository: ...

    @property
    def analytics(self) -> AnalyticsRepository: ...
    @property
    def key_fleet(self) -> KeyFleetCounters | None:
        """Shared per-minute request counters of keys, where several instances may share the
        store (PostgreSQL); ``None`` where one instance owns it (SQLite)."""
        ...
