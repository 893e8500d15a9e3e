"""Changes the CLI and other processes commit, brought into the running server at once.

The server keeps accounts and API keys in memory so that routing never waits on the database.
``better-ccflare account add`` (or any other process) writes to the same database file, and a
script that adds an account and then sends a request must find it there. The store says cheaply
whether anyone else committed (SQLite's ``PRAGMA data_version``, asked on the writer's own
connection so the proxy's own records do not count); :class:`StoreWatch` asks every
``interval`` (a periodic job) and again whenever a request finds no account to serve it, and
reloads the accounts and keys only when something changed.
"""

from __future__ import annotations

import asyncio

from better_ccflare.database import Store

from ._account_pool import AccountPool
from ._api_key_auth import ApiKeyAuthenticator

__all__ = ["STORE_WATCH_INTERVAL_MS", "StoreWatch"]

STORE_WATCH_INTERVAL_MS = 100
"""How often the server asks; a probe costs about 70 µs of wall time, so ten a second cost
nothing measurable. Asking before every request would add that to each one."""


class StoreWatch:
    """Reloads the pool and the API keys when another connection changed the store."""

    __slots__ = ("_auth", "_lock", "_pool", "_store")

    def __init__(self, store: Store, pool: AccountPool, auth: ApiKeyAuthenticator) -> None:
        self._store = store
        self._pool = pool
        self._auth = auth
        self._lock = asyncio.Lock()

    async def catch_up(self) -> bool:
        """Reload what another connection changed; True when something was reloaded.

        One catch-up at a time: a caller that waited for another's finds the copies current.
        """
        async with self._lock:
            if not await self._store.changed_elsewhere():
                return False
            self._auth.invalidate()
            await self._pool.reload()
            return True
