"""Wiring of the PostgreSQL backend: the pool, the writer task, and the repositories.

Opening connects (a clear error when the server cannot be reached), applies the migrations
under an advisory lock, and checks that the key decrypts the credentials already stored, before
anything else is written. Several instances can open the same database at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from asyncpg import Pool

from better_ccflare.core import Clock, SessionPin
from better_ccflare.database._coordination import REFRESH_LOCK_TIMEOUT_S, FleetLease
from better_ccflare.database._crypto import SecretKey
from better_ccflare.database._maintenance import RetentionResult, SchemaStatus, StoreStats

from ._accounts import PostgresAccounts
from ._agent_preferences import PostgresAgentPreferences
from ._analytics import PostgresAnalytics
from ._api_keys import PostgresApiKeys
from ._connection import Connection, Reader, open_pool
from ._fleet_locks import PostgresLocks
from ._key_fleet import PostgresKeyFleet
from ._listener import ChangeListener
from ._migrations import apply_migrations, schema_status, verify_key
from ._oauth_sessions import PostgresOAuthSessions
from ._requests import PostgresRequests
from ._retention import delete_old_history
from ._session_pins import PostgresSessionPins
from ._strategies import PostgresStrategies
from ._usage import PostgresUsage
from ._writer import Writer

__all__ = ["PostgresBackend"]

_OUR_TABLES = (
    "accounts",
    "requests",
    "request_payloads",
    "oauth_sessions",
    "api_keys",
    "api_key_minutes",
    "api_key_inflight",
    "agent_preferences",
    "strategies",
    "usage_snapshots",
    "session_pins",
)


class PostgresBackend:
    """The repositories plus :class:`~better_ccflare.database.StoreMaintenance` for one
    PostgreSQL database."""

    __slots__ = (
        "_changes_seen",
        "_key",
        "_listener",
        "_locks",
        "_name",
        "_pool",
        "_reader",
        "_retention_lock",
        "_url",
        "_writer",
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

    def __init__(
        self,
        *,
        pool: Pool,
        key: SecretKey,
        clock: Clock,
        writer: Writer,
        name: str,
        url: str,
        locks: PostgresLocks,
    ) -> None:
        self._pool = pool
        self._locks = locks
        self._name = name
        self._url = url
        self._listener: ChangeListener | None = None
        self._changes_seen: int | None = None
        """The sum of the other writers' change counters when :meth:`changed_elsewhere` last
        looked (``None`` before the first look, which takes the present as the baseline)."""
        self._key = key
        self._writer = writer
        self._reader = Reader(pool)
        self._retention_lock = asyncio.Lock()
        self.accounts = PostgresAccounts(self._reader, writer, key)
        self.requests = PostgresRequests(self._reader, writer, clock)
        self.api_keys = PostgresApiKeys(self._reader, writer)
        self.key_fleet = PostgresKeyFleet(self._reader, writer, name)
        self.oauth_sessions = PostgresOAuthSessions(self._reader, writer, key)
        self.agent_preferences = PostgresAgentPreferences(self._reader, writer)
        self.strategies = PostgresStrategies(self._reader, writer)
        self.session_pins = PostgresSessionPins(self._reader, writer)
        self.usage = PostgresUsage(self._reader, writer)
        self.analytics = PostgresAnalytics(self._reader)

    @classmethod
    async def open(
        cls, url: str, *, key: SecretKey, clock: Clock, payload_budget_bytes: int
    ) -> PostgresBackend:
        # Unique per open store: its writes are told from every other instance's and the CLI's.
        name = f"better-ccflare-{uuid.uuid4().hex[:12]}"
        pool = await open_pool(url, name=name)
        locks = PostgresLocks(url, name=name)
        try:
            await apply_migrations(pool, clock.now_ms())
            await verify_key(pool, key)
            await locks.open()
        except BaseException:
            await pool.close()
            raise
        writer = Writer(pool, payload_budget_bytes=payload_budget_bytes)
        writer.start()
        backend = cls(
            pool=pool, key=key, clock=clock, writer=writer, name=name, url=url, locks=locks
        )
        await backend.changed_elsewhere()
        return backend

    def refresh_lock(
        self, account_id: str, *, timeout_s: float = REFRESH_LOCK_TIMEOUT_S
    ) -> AbstractAsyncContextManager[None]:
        return self._locks.refresh_lock(account_id, timeout_s=timeout_s)

    def job_lease(self) -> FleetLease:
        return self._locks.job_lease()

    async def flush(self) -> None:
        await self._writer.flush()

    async def close(self) -> None:
        if self._reader.closed:
            return
        self._reader.closed = True
        await self._locks.close()
        if self._listener is not None:
            await self._listener.close()
        await self._writer.close()
        await self._pool.close()

    def stats(self) -> StoreStats:
        return self._writer.stats()

    async def schema_status(self) -> SchemaStatus:
        return await schema_status(self._pool)

    async def check_integrity(self) -> tuple[str, ...]:
        """PostgreSQL guards its own pages (WAL, checksums if enabled); this checks what only
        we can: every migration is applied and every stored credential decrypts."""
        problems = [
            f"migration {name} is not applied" for name in (await self.schema_status()).pending
        ]
        if not problems:
            try:
                await verify_key(self._pool, self._key)
            except Exception as exc:
                problems.append(str(exc))
        return tuple(problems)

    async def changed_elsewhere(self) -> bool:
        # One indexed read of a handful of rows (a counter per store that ever wrote a watched
        # table); this store's own statements move only its own counter.
        seen = await self._reader.fetchval(
            "SELECT COALESCE(sum(version), 0) FROM better_ccflare_changes WHERE writer <> $1",
            self._name,
        )
        total = int(seen)
        changed, self._changes_seen = (
            self._changes_seen is not None and total != self._changes_seen,
            total,
        )
        return changed

    def listen(
        self,
        on_change: Callable[[bool], None],
        on_pin: Callable[[SessionPin], None] | None = None,
    ) -> bool:
        if self._listener is None:
            self._listener = ChangeListener(
                self._url, own_name=self._name, on_change=on_change, on_pin=on_pin
            )
            self._listener.start()
        return True

    async def compact(self) -> None:
        """``VACUUM ANALYZE`` of our tables: frees dead rows for reuse and refreshes the
        planner's statistics. Space goes back to the operating system only from the ends of
        tables; ``VACUUM FULL`` would return it all but locks each table while it rewrites it,
        which a live fleet cannot afford, so it is left to the operator."""

        async def vacuum(connection: Connection) -> None:
            await connection.execute(f"VACUUM ANALYZE {', '.join(_OUR_TABLES)}")

        await self._writer.submit(vacuum, label="compact", transactional=False)

    async def run_retention(
        self, payload_days: int, request_days: int, *, now_ms: int, batch_size: int
    ) -> RetentionResult:
        async with self._retention_lock:
            return await delete_old_history(
                self._writer, payload_days, request_days, now_ms=now_ms, batch_size=batch_size
            )
