"""A scratch PostgreSQL database for one benchmark run, and the CPU its server processes spend.

The proxy on PostgreSQL hands the work of storing a row (parsing, index updates, the commit) to
the server's backend processes, where SQLite does it on a thread inside the proxy. So the
proxy's own CPU per request is not the whole cost, and :class:`ScratchDatabase` also measures
the backends serving the scratch database, from ``/proc/<pid>/stat`` of the pids that
``pg_stat_activity`` lists for it. What it leaves out: the server's shared processes (WAL
writer, checkpointer, background writer, autovacuum), which serve every database at once.

The server is named by ``BETTER_CCFLARE_BENCH_DATABASE_URL`` (any database on it that the role
may connect to; the role needs ``CREATEDB``), else ``postgresql://postgres@127.0.0.1:5432/postgres``.
The scratch database is created empty (the proxy migrates it) and dropped at the end. Backend
CPU is measured only when the server runs on this machine (a loopback host or a socket path).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

__all__ = ["ADMIN_URL_ENV", "DEFAULT_ADMIN_URL", "ScratchDatabase", "admin_url", "scratch_database"]

ADMIN_URL_ENV = "BETTER_CCFLARE_BENCH_DATABASE_URL"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_LOCAL_HOSTS = frozenset({"", "127.0.0.1", "::1", "localhost"})


def admin_url() -> str:
    """The server to create the scratch database on (see the module's docstring)."""
    return os.environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL


class ScratchDatabase:
    """The scratch database's URL, and its backends' CPU since the previous look."""

    __slots__ = ("_admin", "_ticks", "local", "name", "url")

    def __init__(self, admin: asyncpg.Connection, name: str, url: str, *, local: bool) -> None:
        self._admin = admin
        self.name = name
        self.url = url
        self.local = local
        """Whether the server runs here, so that its backends' CPU can be read."""
        self._ticks: dict[int, int] = {}

    async def backend_cpu_seconds(self) -> float:
        """User + system CPU of the backends serving the database since the previous call
        (NaN when the server is not on this machine).

        Each backend's CPU is remembered by pid, so a connection that the proxy's pool opens
        between two calls is counted from its start, and one that closes loses only what it
        used since the previous call.
        """
        if not self.local:
            return float("nan")
        pids: list[int] = [
            row["pid"]
            for row in await self._admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.name
            )
        ]
        used = 0
        for pid in pids:
            ticks = _process_ticks(pid)
            used += ticks - self._ticks.get(pid, 0)
            self._ticks[pid] = ticks
        return used / os.sysconf("SC_CLK_TCK")


def _process_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (0 once it has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


@contextlib.asynccontextmanager
async def scratch_database(url: str) -> AsyncGenerator[ScratchDatabase]:
    """Create an empty database on ``url``'s server for the run; drop it afterwards."""
    parts = urlsplit(url)
    name = f"better_ccflare_bench_{os.getpid()}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield ScratchDatabase(
                admin,
                name,
                parts._replace(path=f"/{name}").geturl(),
                local=(parts.hostname or "") in _LOCAL_HOSTS,
            )
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
