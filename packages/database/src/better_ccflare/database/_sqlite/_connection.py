"""SQLite connections, their pragmas, and the threads that own them.

A ``sqlite3`` connection may only be used by the thread that created it, and any call into it
blocks. So every connection here is created inside, and only ever used by, one dedicated worker
thread (:class:`ConnectionThread`); the event loop hands work to that thread and awaits the
result. Using a connection from anywhere else fails loudly (``check_same_thread``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

from sqlite_utils import Database

from better_ccflare.database._errors import StoreClosedError

from ._writer_process import BUSY_TIMEOUT_S, configure_write_connection

__all__ = [
    "ConnectionPool",
    "ConnectionThread",
    "Runner",
    "open_reader",
    "open_writer",
]

_T = TypeVar("_T")
_log = logging.getLogger("better_ccflare.database")


def open_writer(path: Path) -> Database:
    """Open the write connection, creating the file (mode 0600) and its directory if needed."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The database holds request history and payloads: keep it private. SQLite gives the -wal
    # and -shm files the same permissions as the database file.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    db = _connect(path)
    journal_mode = db.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if journal_mode != "wal":
        _log.warning(
            "SQLite could not use WAL mode for %s (got %s); reads will wait for writes.",
            path,
            journal_mode,
        )
    configure_write_connection(db.conn)
    return db


def open_reader(path: Path) -> Database:
    """Open a connection that can only read (WAL lets it read while the writer commits)."""
    db = _connect(path)
    db.conn.execute("PRAGMA query_only=ON")
    return db


def _connect(path: Path) -> Database:
    # ``timeout`` is SQLite's busy timeout (PRAGMA busy_timeout): wait for another process's
    # lock instead of failing with "database is locked".
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)  # noqa: TID251 (this package owns SQLite)
    conn.row_factory = sqlite3.Row
    return Database(conn, execute_plugins=False)


class Runner(Protocol):
    """Where repositories run their reads: a :class:`ConnectionThread` or a pool of them."""

    async def run(self, fn: Callable[[Database], _T]) -> _T: ...


class ConnectionThread:
    """One worker thread that owns one connection; :meth:`run` executes work there.

    The connection is opened lazily by the first :meth:`run`, inside the thread, which is what
    ``sqlite3`` requires.
    """

    __slots__ = ("_closed", "_connect", "_db", "_executor")

    def __init__(self, name: str, connect: Callable[[], Database]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._connect = connect
        self._db: Database | None = None
        self._closed = False

    async def run(self, fn: Callable[[Database], _T]) -> _T:
        """Run ``fn(db)`` on the owning thread and return its result."""
        if self._closed:
            raise StoreClosedError
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[Database], _T]) -> _T:
        if self._db is None:
            self._db = self._connect()
        return fn(self._db)

    async def close(self) -> None:
        """Close the connection on its thread, then let the thread end."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_connection)
        self._executor.shutdown(wait=False)

    def _close_connection(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class ConnectionPool:
    """Several :class:`ConnectionThread` s on the same file; each :meth:`run` goes to the one
    with the least work waiting.

    For readers: in WAL mode they read at the same time, so one long query (a month of
    analytics, an integrity check) does not hold up every other read.
    """

    __slots__ = ("_threads", "_waiting")

    def __init__(self, name: str, connect: Callable[[], Database], *, size: int) -> None:
        self._threads = [ConnectionThread(f"{name}-{n}", connect) for n in range(size)]
        self._waiting = [0] * size
        """Calls given to each thread and not finished; only touched on the event loop."""

    async def run(self, fn: Callable[[Database], _T]) -> _T:
        index = min(range(len(self._threads)), key=self._waiting.__getitem__)
        self._waiting[index] += 1
        try:
            return await self._threads[index].run(fn)
        finally:
            self._waiting[index] -= 1

    async def close(self) -> None:
        for thread in self._threads:
            await thread.close()
