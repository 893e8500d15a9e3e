"""The connection pool, and turning a failure to reach the server into an error a user can act on.

asyncpg is asynchronous all the way down, so unlike SQLite nothing here needs a thread: every
query is awaited on the event loop without blocking it. Reads take any pooled connection; the
writer takes one per batch.

PostgreSQL's ``text`` cannot hold the character U+0000, which SQLite (and Python) strings can,
say in an upstream's error message. So every connection stores text through a codec that
escapes it reversibly: U+0001 becomes U+0001 U+0002 and U+0000 becomes U+0001 U+0001. Other text
is stored as it is, and the escape keeps code-point order, so ``ORDER BY`` and comparisons
(on escaped arguments, which the codec escapes too) mean what they mean on SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from asyncpg import Pool, Record
from asyncpg.pool import PoolConnectionProxy

from better_ccflare.core import redacted_url
from better_ccflare.database._errors import StoreClosedError, StoreOpenError

__all__ = [
    "POOL_MAX",
    "Connection",
    "Params",
    "Reader",
    "affected",
    "escape_text",
    "open_pool",
    "unescape_text",
    "unless_taken",
]

Connection = PoolConnectionProxy
"""A pooled connection, as the writer and the migrations hold one."""

POOL_MAX = 10
"""Connections per instance: the writer's one plus concurrent reads (dashboard, analytics)."""
_CONNECT_TIMEOUT_S = 10.0


async def open_pool(url: str, *, name: str) -> Pool:
    """A pool of connections to ``url``; at least one connection is made before returning.

    Every connection carries ``name`` as its ``application_name``: the change counters
    (migration ``0003_change_counters``) tell this store's own writes from everyone else's by it.

    Raises:
        StoreOpenError: the server cannot be reached or refuses the login.
    """
    try:
        return await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=POOL_MAX,
            timeout=_CONNECT_TIMEOUT_S,
            init=_set_up,
            server_settings={"application_name": name},
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StoreOpenError(
            f"Cannot connect to the PostgreSQL database {redacted_url(url)}: {exc}. Check "
            "DATABASE_URL (host, port, user, password, database name) and that the server is "
            "running and accepts connections from this machine."
        ) from exc


async def _set_up(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "text", schema="pg_catalog", encoder=escape_text, decoder=unescape_text, format="text"
    )


_ESCAPED = re.compile("\x01[\x01\x02]")
_UNESCAPED = {"\x01\x01": "\x00", "\x01\x02": "\x01"}


def escape_text(text: str) -> str:
    """``text`` without U+0000, reversibly (see the module's docstring)."""
    if "\x00" not in text and "\x01" not in text:
        return text
    return text.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")


def unescape_text(stored: str) -> str:
    """The inverse of :func:`escape_text`."""
    if "\x01" not in stored:
        return stored
    return _ESCAPED.sub(lambda match: _UNESCAPED[match[0]], stored)


class Params:
    """The values of one statement, numbered as asyncpg's ``$1``, ``$2``, ... placeholders."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: list[object] = []

    def add(self, value: object) -> str:
        """Bind ``value`` and return its placeholder."""
        self.values.append(value)
        return f"${len(self.values)}"


class Reader:
    """Reads on any pooled connection, refused once the store is closed (as on SQLite)."""

    __slots__ = ("_pool", "closed")

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self.closed = False

    async def fetch(self, sql: str, *args: object) -> list[Record]:
        self._check_open()
        return await self._pool.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: object) -> Record | None:
        self._check_open()
        return await self._pool.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: object) -> Any:
        self._check_open()
        return await self._pool.fetchval(sql, *args)

    def _check_open(self) -> None:
        if self.closed:
            raise StoreClosedError


def unless_taken(sql: str, *args: object) -> Callable[[Connection], Awaitable[str | None]]:
    """A write of ``sql`` that yields its command status, or ``None`` when it would break a
    uniqueness rule. It runs in a savepoint, so that failure spares the rest of its batch."""

    async def write(connection: Connection) -> str | None:
        try:
            async with connection.transaction():
                return await connection.execute(sql, *args)
        except asyncpg.UniqueViolationError:
            return None

    return write


def affected(status: str) -> int:
    """The row count of a command status such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])
