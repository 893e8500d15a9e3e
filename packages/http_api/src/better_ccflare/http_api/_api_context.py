"""What the management API works with, handed to every route as the ``ctx`` dependency.

The server builds one :class:`ManagementContext` from its running components. The API never
reaches into the server: settings that can change at run time go through :class:`LiveSettings`,
which the server implements (it writes the config file and applies the change in place).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx2
from litestar.di import NamedDependency

from better_ccflare.core import Clock, Config
from better_ccflare.database import RetentionResult, Store
from better_ccflare.logger import LogBus
from better_ccflare.providers import ProviderRegistry
from better_ccflare.proxy import (
    AccountPool,
    ApiKeyAuthenticator,
    KeyGate,
    RequestEvents,
    UsageCache,
)
from better_ccflare.proxy.agents import AgentDirectory

from ._metrics import Metrics

__all__ = ["Ctx", "LiveSettings", "ManagementContext"]


class LiveSettings(Protocol):
    """The configuration as it is now, and the way to change it while running."""

    def current(self) -> Config: ...

    async def update(self, changes: Mapping[str, object]) -> Config:
        """Persist ``changes`` (config-file keys to values) and apply them; returns the result.

        Raises:
            ConfigError: a value is invalid, or the environment overrides the file for it.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagementContext:
    store: Store
    pool: AccountPool
    clock: Clock
    settings: LiveSettings
    registry: ProviderRegistry
    usage: UsageCache
    auth: ApiKeyAuthenticator
    requests: RequestEvents
    oauth_client: httpx2.AsyncClient
    """For token exchanges during logins started from the dashboard."""
    run_retention: Callable[[], Awaitable[RetentionResult]]
    poll_usage: Callable[[str], None]
    """Ask the usage poller to fetch one account's windows soon."""
    strategy_name: Callable[[], str]
    agents: AgentDirectory
    """The agents the proxy matches requests against: the API lists them from the same cache."""
    log_bus: LogBus | None = None
    """The live log; ``None`` when logging was configured without one (tests)."""
    log_dir: Path | None = None
    metrics: Metrics | None = None
    """What ``/metrics`` exports; ``None``: it answers 404."""
    key_gate: KeyGate | None = None
    """The per-key limits' counters, for the keys' usage views; ``None``: nothing counted."""
    port: int = 8080
    version: str = "0.1.0"


Ctx = NamedDependency[ManagementContext]
"""How a route asks for the context: Litestar injects it by the parameter's name, ``ctx``."""
