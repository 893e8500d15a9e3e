"""One server per SQLite file: a second ``serve`` on the same file is refused, not let in.

Two servers on one SQLite file would each keep the accounts, cooldowns and pins in memory and
write them behind, and SQLite cannot tell either about the other's changes cheaply enough for
the request path: each would route on a view the other keeps overwriting. So a server holds an
exclusive lock on ``<db>.server.lock`` (``flock``) for its lifetime, and a second one stops at
start with one line naming the first's process id. The operating system drops the lock when the
process ends, however it ends (``kill -9`` included), so a crashed server never leaves a stale
lock. The CLI does not take the lock: its commands write through SQLite's own locking while a
server runs, and the server picks their changes up. Several servers share one PostgreSQL instead
(``DATABASE_URL``; docs/fleet.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Generator
from pathlib import Path

from better_ccflare.core import BetterCcflareError

__all__ = ["server_lock"]


@contextlib.contextmanager
def server_lock(db_path: Path) -> Generator[None]:
    """Hold the server lock of the SQLite file ``db_path`` (whose directory exists).

    Raises:
        BetterCcflareError: Another server holds it.
    """
    path = db_path.with_name(f"{db_path.name}.server.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BetterCcflareError(
                f"another better-ccflare server (pid {_holder(fd)}) is already serving the "
                f"database {db_path}; two servers on one SQLite file would overwrite each "
                "other's accounts and cooldowns. Stop that server, or give this one its own "
                "database (BETTER_CCFLARE_DB_PATH), or run several over one PostgreSQL "
                "(DATABASE_URL)."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    """The process id the lock's holder wrote, or ``unknown`` if it has not yet."""
    written = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return written if written.isdigit() else "unknown"
