"""The ``session_pins`` table on SQLite."""

from __future__ import annotations

from better_ccflare.core import SessionPin
from better_ccflare.database._session_pins import session_pin_sql

from ._connection import Runner
from ._writer import Writer

__all__ = ["SqliteSessionPins"]

_UPSERT, _PURGE, _LIVE = session_pin_sql(("?", "?", "?", "?"))


class SqliteSessionPins:
    """:class:`~better_ccflare.database.SessionPinRepository` on SQLite."""

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: Runner, writer: Writer) -> None:
        self._reader = reader
        self._writer = writer

    def save_nowait(self, pin: SessionPin, now_ms: int) -> None:
        row = (pin.session_id, pin.account_id, pin.expires_at_ms)
        self._writer.enqueue_statement(_UPSERT, row, label="session_pins.save")
        self._writer.enqueue_statement(_PURGE, (now_ms,), label="session_pins.purge")

    async def list_live(self, now_ms: int) -> list[SessionPin]:
        rows = await self._reader.run(lambda db: db.conn.execute(_LIVE, (now_ms,)).fetchall())
        return [
            SessionPin(session_id=row[0], account_id=row[1], expires_at_ms=row[2]) for row in rows
        ]
