"""The store: the one object the upper layers (proxy, HTTP API, CLI) hold.

It exposes one repository per table, typed by the backend-neutral protocols, plus lifecycle and
housekeeping. Which backend sits behind it is decided here and nowhere else: a PostgreSQL URL
opens the PostgreSQL backend (imported only then, since its driver is an optional extra), any
path the SQLite one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType

from better_ccflare.core import Clock, Config, SessionPin, SystemClock, redacted_url

from ._backend import Backend
from ._coordination import REFRESH_LOCK_TIMEOUT_S, Coordination, FleetLease
from ._crypto import SecretKey, load_or_create_key
from ._errors import StoreOpenError
from ._maintenance import RetentionResult, SchemaStatus, StoreMaintenance, StoreStats
from ._sqlite import SqliteBackend

__all__ = ["Store", "is_postgres_url"]

DEFAULT_PAYLOAD_BUDGET_BYTES = 100 * 1024 * 1024
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_log = logging.getLogger("better_ccflare.database")


def is_postgres_url(target: Path | str) -> bool:
    return isinstance(target, str) and target.lower().startswith(_POSTGRES_SCHEMES)


class Store:
    """Persistent state of better-ccflare.

    Open it with :meth:`open` (or :meth:`from_config`) inside the event loop and close it on
    shutdown; closing writes everything still queued. It is also an async context manager.
    Nothing here blocks the event loop: SQLite runs on a writer thread and two reader threads,
    PostgreSQL through an asynchronous driver and a writer task.

    The constructor takes any :class:`Backend`, so another backend (or a test double) can stand
    behind the same object; the repositories are its own, bound once so that reaching one costs
    an attribute read.
    """

    __slots__ = (
        "_clock",
        "_coordination",
        "_maintenance",
        "accounts",
        "agent_preferences",
        "analytics",
        "api_keys",
        "key_fleet",
        "oauth_sessions",
        "requests",
        "session_pins",
        "strategies",
        "usage",
    )

    def __init__(self, backend: Backend, *, clock: Clock) -> None:
        self.accounts = backend.accounts
        self.requests = backend.requests
        self.api_keys = backend.api_keys
        self.key_fleet = backend.key_fleet
        self.oauth_sessions = backend.oauth_sessions
        self.agent_preferences = backend.agent_preferences
        self.strategies = backend.strategies
        self.session_pins = backend.session_pins
        self.usage = backend.usage
        self.analytics = backend.analytics
        self._maintenance: StoreMaintenance = backend
        self._coordination: Coordination = backend
        self._clock = clock

    @classmethod
    async def open(
        cls,
        db_path: Path | str,
        *,
        key: SecretKey,
        clock: Clock | None = None,
        payload_budget_bytes: int = DEFAULT_PAYLOAD_BUDGET_BYTES,
    ) -> Store:
        """Open (creating if needed) and migrate the SQLite file or PostgreSQL database.

        Args:
            db_path: The SQLite file, whose directory is created (mode 0700) if missing; or a
                ``postgresql://`` (``postgres://``) URL, whose database must exist (its tables
                are created). PostgreSQL needs the ``better-ccflare-database[postgres]`` extra.
            key: Encrypts and decrypts the stored credentials (:func:`load_or_create_key`).
            clock: Source of "now" for stored timestamps; the system clock by default.
            payload_budget_bytes: How many bytes of payloads may wait to be written before new
                ones are dropped.

        Raises:
            CredentialKeyError: the database holds credentials encrypted under another key.
            SchemaError: the file cannot be migrated (it is not a better-ccflare database).
            StoreOpenError: the file cannot be opened or is not SQLite (it is left untouched);
                the PostgreSQL server cannot be reached, or its driver is not installed.
        """
        clock = clock or SystemClock()
        backend: Backend
        if is_postgres_url(db_path):
            backend = await _open_postgres(
                str(db_path), key=key, clock=clock, payload_budget_bytes=payload_budget_bytes
            )
        else:
            backend = await SqliteBackend.open(
                Path(db_path), key=key, clock=clock, payload_budget_bytes=payload_budget_bytes
            )
        return cls(backend, clock=clock)

    @classmethod
    async def from_config(cls, config: Config, *, clock: Clock | None = None) -> Store:
        """Open the store that ``config`` describes: its ``database_url`` (``DATABASE_URL``) when
        that is a PostgreSQL URL, else its ``db_path``; with the key from ``secret_key``
        (``BETTER_CCFLARE_SECRET_KEY``) or the key file in ``config_dir``. Every instance
        sharing a PostgreSQL database needs the same key."""
        key = await asyncio.to_thread(
            load_or_create_key,
            config.config_dir,
            config.secret_key,
            env_source=str(config.source_of("secret_key")),
        )
        url = config.database_url
        if url is not None and not is_postgres_url(url):
            _log.warning(
                "DATABASE_URL (%s, from %s) is not a postgresql:// URL, so it is ignored; using "
                "the SQLite database %s.",
                redacted_url(url),
                config.source_of("database_url"),
                config.db_path,
            )
        target = url if url is not None and is_postgres_url(url) else config.db_path
        return await cls.open(target, key=key, clock=clock)

    @staticmethod
    def sqlite_file(config: Config) -> Path | None:
        """The SQLite file :meth:`from_config` opens for ``config``; ``None`` when it opens
        PostgreSQL. A server takes a lock beside this file: one server per SQLite file."""
        url = config.database_url
        return None if url is not None and is_postgres_url(url) else config.db_path

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def flush(self) -> None:
        """Return once every write queued before the call is committed (or has failed)."""
        await self._maintenance.flush()

    async def close(self) -> None:
        """Write everything still queued, then release the database. Safe to call twice."""
        await self._maintenance.close()

    def stats(self) -> StoreStats:
        """The writer's queue and counters (from memory, no I/O)."""
        return self._maintenance.stats()

    async def schema_status(self) -> SchemaStatus:
        """Applied and pending migrations, for ``doctor``-style diagnostics."""
        return await self._maintenance.schema_status()

    async def check_integrity(self) -> tuple[str, ...]:
        """What a full integrity check finds wrong with the stored data; empty when sound.

        Reads the whole file (on a reader thread), so it takes a while on a big database;
        for ``doctor``-style diagnostics, not for health checks.
        """
        return await self._maintenance.check_integrity()

    async def changed_elsewhere(self) -> bool:
        """Whether another connection (the CLI, another process) committed a change since the
        previous call (or since the store opened). The store's own writes do not count, so a
        running server can ask this often and reload what it caches only when it says so."""
        return await self._maintenance.changed_elsewhere()

    def listen(
        self,
        on_change: Callable[[bool], None],
        on_pin: Callable[[SessionPin], None] | None = None,
    ) -> bool:
        """Tell ``on_change`` of other writers' changes to the accounts, API keys, strategies
        and agent preferences as they commit, until the store closes (PostgreSQL: a ``LISTEN``
        connection, reconnected when it drops). ``on_change(True)`` follows each (re)connection:
        changes may have been missed, so reload everything (the live session pins included).
        ``on_pin`` gets every session pin another writer stores. Returns ``False`` when the
        backend cannot push (SQLite, where :meth:`changed_elsewhere` is the way)."""
        return self._maintenance.listen(on_change, on_pin)

    async def compact(self) -> None:
        """Return free space to the file system. Writes wait while it runs."""
        await self._maintenance.compact()

    def refresh_lock(
        self, account_id: str, *, timeout_s: float = REFRESH_LOCK_TIMEOUT_S
    ) -> AbstractAsyncContextManager[None]:
        """Hold ``account_id``'s refresh lock for an ``async with`` block.

        On PostgreSQL no other instance sharing the database holds it meanwhile, so of several
        instances that find the account's token expiring, one refreshes and the others, once
        they get the lock, re-read the stored tokens and find the new ones. The lock goes with
        the holder's connection if the process dies. On SQLite (one server) it is free.

        Raises:
            FleetLockError: not taken within ``timeout_s`` (another instance's refresh is
                hanging) or the database cannot be reached.
        """
        return self._coordination.refresh_lock(account_id, timeout_s=timeout_s)

    def job_lease(self) -> FleetLease:
        """A claim on the leadership of the scheduled jobs (usage polls, auto-refresh probes,
        retention): :meth:`FleetLease.hold` takes or confirms it. On PostgreSQL one instance
        of the fleet holds it at a time, and a dead leader's lease passes on as soon as the
        server sees its connection close; on SQLite the one server always holds it."""
        return self._coordination.job_lease()

    async def run_retention(
        self,
        payload_days: int,
        request_days: int,
        *,
        now_ms: int | None = None,
        batch_size: int = 1000,
    ) -> RetentionResult:
        """Delete history past its retention, in batches of at most ``batch_size`` rows.

        Args:
            payload_days: Keep request/response bodies this many days (``DATA_RETENTION_DAYS``).
            request_days: Keep request rows and usage snapshots this many days
                (``REQUEST_RETENTION_DAYS``).
            now_ms: The reference time; the store's clock by default.
            batch_size: Rows per transaction; live writes run between batches.
        """
        return await self._maintenance.run_retention(
            payload_days,
            request_days,
            now_ms=self._clock.now_ms() if now_ms is None else now_ms,
            batch_size=batch_size,
        )


async def _open_postgres(
    url: str, *, key: SecretKey, clock: Clock, payload_budget_bytes: int
) -> Backend:
    try:
        from ._postgres import PostgresBackend  # noqa: PLC0415 (the driver is an optional extra)
    except ImportError as exc:
        raise StoreOpenError(
            f"DATABASE_URL points at PostgreSQL ({redacted_url(url)}), but its driver is not "
            f"installed ({exc}). Install it with: pip install 'better-ccflare-database[postgres]' "
            "(better-ccflare-server includes it), or unset DATABASE_URL to use SQLite."
        ) from exc
    return await PostgresBackend.open(
        url, key=key, clock=clock, payload_budget_bytes=payload_budget_bytes
    )
