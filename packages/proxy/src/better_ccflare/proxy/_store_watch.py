"""Changes the CLI and other instances commit, brought into the running server at once.

The server keeps accounts and API keys in memory so that routing never waits on the database.
``better-ccflare account add`` (or another instance over the same PostgreSQL) writes to the
store, and a script that adds an account and then sends a request must find it there; a
cooldown, pause or breaker bench one instance writes must bench the account on every instance.

On PostgreSQL the store pushes: :meth:`StoreWatch.start` has it call back on every change
another writer commits (``LISTEN``/``NOTIFY``), and one task reloads, however many notices
arrived meanwhile. The cheap probe (:meth:`Store.changed_elsewhere`) stays as a safety net every
:data:`STORE_WATCH_FALLBACK_MS`. On SQLite nothing pushes, and the probe (``PRAGMA
data_version``, asked on the writer's own connection so the proxy's own records do not count)
runs every :data:`STORE_WATCH_INTERVAL_MS`. Either way a request that finds no account to serve
it asks again at once.

The ``session-affinity`` pins other instances store arrive with their values and go straight
into :class:`SessionPins`; they are read from the store at start and after every reconnection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from better_ccflare.core import Clock, SessionPin
from better_ccflare.database import Store, StoreClosedError
from better_ccflare.load_balancer import SessionPins

from ._account_pool import AccountPool
from ._api_key_auth import ApiKeyAuthenticator

__all__ = ["STORE_WATCH_FALLBACK_MS", "STORE_WATCH_INTERVAL_MS", "StoreWatch"]

_log = logging.getLogger("better_ccflare.proxy")

STORE_WATCH_INTERVAL_MS = 100
"""How often the server asks when the store cannot push; a probe costs about 70 µs of wall time
on SQLite, so ten a second cost nothing measurable. Asking before every request would add that
to each one."""

STORE_WATCH_FALLBACK_MS = 5_000
"""How often the server asks although the store pushes: only a notice lost in a way the
listener cannot see would wait this long."""

RELOAD_GAP_S = 0.1
"""The least time between two reloads the notices cause. Under load every instance writes each
account's rate-limit reading once a second, and each write is a notice to all the others; the
notices of a tenth of a second share one reload, and a change still arrives well within a
second."""


class StoreWatch:
    """Reloads the pool and the API keys when another connection changed the store, and keeps
    ``pins`` (when given) in step with the other instances'."""

    __slots__ = (
        "_auth",
        "_clock",
        "_follower",
        "_lock",
        "_pins",
        "_pool",
        "_reload_all",
        "_store",
        "_wanted",
    )

    def __init__(
        self,
        store: Store,
        pool: AccountPool,
        auth: ApiKeyAuthenticator,
        *,
        clock: Clock,
        pins: SessionPins | None = None,
    ) -> None:
        self._store = store
        self._pool = pool
        self._auth = auth
        self._clock = clock
        self._pins = pins
        self._lock = asyncio.Lock()
        self._wanted = asyncio.Event()
        self._reload_all = False
        self._follower: asyncio.Task[None] | None = None

    def start(self) -> bool:
        """Follow the store's change notices; ``False`` when it has none (then the caller
        probes every :data:`STORE_WATCH_INTERVAL_MS`, else every
        :data:`STORE_WATCH_FALLBACK_MS`)."""
        if not self._store.listen(self._notice, self._adopt if self._pins is not None else None):
            return False
        self._follower = asyncio.get_running_loop().create_task(self._follow(), name="store-watch")
        return True

    async def stop(self) -> None:
        """Stop following notices (before the store closes)."""
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    async def catch_up(self, *, everything: bool = False) -> bool:
        """Reload what another connection changed; True when something was reloaded.

        One catch-up at a time: a caller that waited for another's finds the copies current.

        Args:
            everything: Reload without asking the store first (notices may have been missed).
        """
        async with self._lock:
            changed = await self._store.changed_elsewhere()
            if not (changed or everything):
                return False
            self._auth.invalidate()
            await self._pool.reload()
            if everything:
                await self.load_pins()
            return True

    async def load_pins(self) -> None:
        """Adopt the live pins stored (at start, and when notices may have been missed)."""
        if self._pins is None:
            return
        for pin in await self._store.session_pins.list_live(self._clock.now_ms()):
            self._adopt(pin)

    def _adopt(self, pin: SessionPin) -> None:
        assert self._pins is not None
        self._pins.adopt(pin.session_id, pin.account_id, pin.expires_at_ms)

    def _notice(self, reload_all: bool) -> None:
        # Called for each notice; the follower coalesces a burst into one reload.
        self._reload_all |= reload_all
        self._wanted.set()

    async def _follow(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            everything, self._reload_all = self._reload_all, False
            try:
                await self.catch_up(everything=everything)
            except StoreClosedError:
                return
            except Exception:
                # The database is unreachable for now: the listener reconnects and asks for a
                # full catch-up, and the fallback probe keeps asking meanwhile.
                _log.warning("Could not reload changes from the store", exc_info=True)
            await asyncio.sleep(RELOAD_GAP_S)
