"""Wiring of the SQLite backend: the writer's connection thread, a pool of reader threads, the
writer, and the repositories.

Opening runs on the writer thread, before any other write: create the file, set the pragmas,
check that the key decrypts what is stored, then migrate. Only then do the readers open.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from sqlite_utils import Database

from better_ccflare.core import Clock, SessionPin
from better_ccflare.database._coordination import (
    REFRESH_LOCK_TIMEOUT_S,
    FleetLease,
    SoleInstance,
)
from better_ccflare.database._crypto import SecretKey
from better_ccflare.database._errors import StoreOpenError
from better_ccflare.database._maintenance import RetentionResult, SchemaStatus, StoreStats

from ._accounts import SqliteAccounts
from ._agent_preferences import SqliteAgentPreferences
from ._analytics import SqliteAnalytics
from ._api_keys import SqliteApiKeys
from ._connection import ConnectionPool, ConnectionThread, open_reader, open_writer
from ._migrations import apply_migrations, schema_status, verify_key
from ._oauth_sessions import SqliteOAuthSessions
from ._requests import SqliteRequests
from ._retention import delete_old_history
from ._session_pins import SqliteSessionPins
from ._strategies import SqliteStrategies
from ._usage import SqliteUsage
from ._writer import Writer, data_version
from ._writer_link import WriterProcess

__all__ = ["SqliteBackend"]

_SOLE = SoleInstance()
READER_THREADS = 2
"""Reads run two at a time, so a slow one (a long analytics range) does not stall the rest."""


class SqliteBackend:
    """The repositories plus :class:`~better_ccflare.database.StoreMaintenance` for one file."""

    __slots__ = (
        "_key",
        "_reader",
        "_retention_lock",
        "_writer",
        "_writer_thread",
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
        key: SecretKey,
        clock: Clock,
        writer_thread: ConnectionThread,
        reader: ConnectionPool,
        writer: Writer,
    ) -> None:
        self._key = key
        self._writer_thread = writer_thread
        self._reader = reader
        self._writer = writer
        self._retention_lock = asyncio.Lock()
        self.accounts = SqliteAccounts(reader, writer, key)
        self.requests = SqliteRequests(reader, writer, clock)
        self.api_keys = SqliteApiKeys(reader, writer)
        self.key_fleet = None
        """One instance owns a SQLite file: its in-memory counts are the whole truth."""
        self.oauth_sessions = SqliteOAuthSessions(reader, writer, key)
        self.agent_preferences = SqliteAgentPreferences(reader, writer)
        self.strategies = SqliteStrategies(reader, writer)
        self.session_pins = SqliteSessionPins(reader, writer)
        self.usage = SqliteUsage(reader, writer)
        self.analytics = SqliteAnalytics(reader, writer)

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        key: SecretKey,
        clock: Clock,
        payload_budget_bytes: int,
    ) -> SqliteBackend:
        writer_thread = ConnectionThread("better-ccflare-db-writer", lambda: open_writer(path))

        def prepare(db: Database) -> int:
            verify_key(db, key)
            apply_migrations(db, key)
            return data_version(db)

        try:
            version = await writer_thread.run(prepare)
        except sqlite3.DatabaseError as exc:
            await writer_thread.close()
            raise StoreOpenError(
                f"Cannot open the database {path}: {exc}. Check the path "
                "(BETTER_CCFLARE_DB_PATH), its permissions, and that it is a SQLite file; "
                "the file was left untouched."
            ) from exc
        except BaseException:
            await writer_thread.close()
            raise
        reader = ConnectionPool(
            "better-ccflare-db-reader", lambda: open_reader(path), size=READER_THREADS
        )
        writer = Writer(
            writer_thread,
            payload_budget_bytes=payload_budget_bytes,
            process=WriterProcess(path),
            data_version=version,
        )
        writer.start()
        return cls(
            key=key,
            clock=clock,
            writer_thread=writer_thread,
            reader=reader,
            writer=writer,
        )

    def refresh_lock(
        self, account_id: str, *, timeout_s: float = REFRESH_LOCK_TIMEOUT_S
    ) -> AbstractAsyncContextManager[None]:
        """A SQLite file has one server: its token manager's single flight is the whole lock."""
        return _SOLE.refresh_lock(account_id, timeout_s=timeout_s)

    def job_lease(self) -> FleetLease:
        """A SQLite file has one server, and it always leads."""
        return _SOLE.job_lease()

    async def flush(self) -> None:
        await self._writer.flush()

    async def close(self) -> None:
        await self._writer.close()
        await self._writer_thread.close()
        await self._reader.close()

    def stats(self) -> StoreStats:
        return self._writer.stats()

    async def schema_status(self) -> SchemaStatus:
        return await self._reader.run(lambda db: schema_status(db, self._key))

    async def check_integrity(self) -> tuple[str, ...]:
        def check(db: Database) -> tuple[str, ...]:
            try:
                rows = db.conn.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.DatabaseError as exc:  # damage bad enough that the check cannot run
                return (str(exc),)
            return tuple(str(row[0]) for row in rows if row[0] != "ok")

        return await self._reader.run(check)

    async def changed_elsewhere(self) -> bool:
        # Only the writer knows which of its two connections (its thread's and its process's)
        # committed since each last looked; the proxy's own records must not count.
        return await self._writer.changed_elsewhere()

    def listen(
        self,
        on_change: Callable[[bool], None],
        on_pin: Callable[[SessionPin], None] | None = None,
    ) -> bool:
        # One server per file (the server's lock): the only other writer is the CLI, and
        # asking data_version costs next to nothing, so there is nothing to push.
        return False

    async def compact(self) -> None:
        def vacuum(db: Database) -> None:
            db.vacuum()
            db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await self._writer.submit(vacuum, label="compact", transactional=False)

    async def run_retention(
        self, payload_days: int, request_days: int, *, now_ms: int, batch_size: int
    ) -> RetentionResult:
        async with self._retention_lock:
            return await delete_old_history(
                self._writer, payload_days, request_days, now_ms=now_ms, batch_size=batch_size
            )
