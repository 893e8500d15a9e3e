"""Other instances' changes, heard the moment they commit: ``LISTEN`` on a connection of its own.

Every change to a table a running server caches (accounts, API keys, strategies, agent
preferences) ``NOTIFY``s :data:`CHANGE_CHANNEL` with the writer's name (migration
``0004_change_notices``), and every session pin stored ``NOTIFY``s :data:`PIN_CHANNEL` with the
pin itself (``0005_session_pins``). A server listens on one dedicated connection, outside the
pool (a pooled connection would stop listening when it is handed back), and tells its owner
about every notice from another writer. A listener hears nothing while its connection is down,
so after every (re)connection the owner is told to catch up on everything; a lost connection is
retried with a doubling pause, and a connection that stops answering (a silent network) is found
by a periodic ping and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
import msgspec

from better_ccflare.core import SessionPin, redacted_url

from ._connection import unescape_text
from ._migrations import CHANGE_CHANNEL, PIN_CHANNEL

__all__ = ["ChangeListener"]

_log = logging.getLogger("better_ccflare.database")

_RETRY_FIRST_S = 0.1
_RETRY_MAX_S = 5.0
_PING_EVERY_S = 5.0
"""How often a quiet connection is asked whether it is still there."""
_PING_TIMEOUT_S = 5.0


class _PinNotice(msgspec.Struct, frozen=True):
    writer: str
    session_id: str
    account_id: str
    expires_at: int


_decode_pin = msgspec.json.Decoder(_PinNotice).decode


class ChangeListener:
    """Calls ``on_change(caught_up=False)`` for each notice from another writer, and
    ``on_change(caught_up=True)`` after each (re)connection: changes may have been missed, so
    everything must be reloaded.

    Pins another writer stored go to ``on_pin``, when given.

    Args:
        url: The database.
        own_name: The ``application_name`` of this store's writes, whose notices are its own.
        on_change: Runs on the event loop; it must be quick (schedule work, do not do it).
        on_pin: Likewise.
    """

    __slots__ = ("_connection", "_on_change", "_on_pin", "_own_name", "_task", "_url")

    def __init__(
        self,
        url: str,
        *,
        own_name: str,
        on_change: Callable[[bool], None],
        on_pin: Callable[[SessionPin], None] | None = None,
    ) -> None:
        self._url = url
        self._own_name = own_name
        self._on_change = on_change
        self._on_pin = on_pin
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect and listen in the background, until :meth:`close`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pg-listen")

    async def close(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._disconnect()

    async def _run(self) -> None:
        pause = _RETRY_FIRST_S
        down = False
        while True:
            try:
                await self._connect()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not down:
                    _log.warning(
                        "Cannot listen for other instances' changes on %s (%s); retrying, and "
                        "checking for changes every few seconds meanwhile.",
                        redacted_url(self._url),
                        exc,
                    )
                down = True
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RETRY_MAX_S)
                continue
            if down:
                _log.info("Listening for other instances' changes again.")
            down, pause = False, _RETRY_FIRST_S
            self._on_change(True)
            await self._until_lost()
            await self._disconnect()
            _log.warning("Lost the connection that listens for other instances' changes.")
            down = True

    async def _connect(self) -> None:
        connection = await asyncpg.connect(
            self._url,
            timeout=_PING_TIMEOUT_S,
            server_settings={"application_name": f"{self._own_name}-listen"},
        )
        try:
            await connection.add_listener(CHANGE_CHANNEL, self._notice)
            if self._on_pin is not None:
                await connection.add_listener(PIN_CHANNEL, self._pin_notice)
        except BaseException:
            connection.terminate()
            raise
        self._connection = connection

    async def _until_lost(self) -> None:
        """Return once the connection is gone or stopped answering."""
        connection = self._connection
        assert connection is not None
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        while not connection.is_closed():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), _PING_EVERY_S)
                return
            try:
                await connection.execute("SELECT 1", timeout=_PING_TIMEOUT_S)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                return

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()

    def _notice(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        if payload != self._own_name:
            self._on_change(False)

    def _pin_notice(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        if self._on_pin is None or not isinstance(payload, str):
            return
        try:
            notice = _decode_pin(payload)
        except msgspec.DecodeError:
            _log.warning("Ignored a malformed session pin notice")
            return
        if notice.writer != self._own_name:
            self._on_pin(
                SessionPin(
                    session_id=unescape_text(notice.session_id),
                    account_id=unescape_text(notice.account_id),
                    expires_at_ms=notice.expires_at,
                )
            )
