"""The ``session_pins`` table on PostgreSQL; a trigger announces every pin stored (migration
``0005_session_pins``), so the other instances adopt it without reading the table."""

from __future__ import annotations

from better_ccflare.core import SessionPin
from better_ccflare.database._session_pins import session_pin_sql

from ._connection import Reader
from ._writer import Writer

__all__ = ["PostgresSessionPins"]

_UPSERT, _PURGE, _LIVE = session_pin_sql(("$1", "$2", "$3", "$1"))


class PostgresSessionPins:
    """:class:`~better_ccflare.database.SessionPinRepository` on PostgreSQL."""

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: Reader, writer: Writer) -> None:
        self._reader = reader
        self._writer = writer

    def save_nowait(self, pin: SessionPin, now_ms: int) -> None:
        label = "session_pins.save"
        self._writer.enqueue_statement(
            _UPSERT, (pin.session_id, pin.account_id, pin.expires_at_ms), label=label
        )
        self._writer.enqueue_statement(_PURGE, (now_ms,), label=label)

    async def list_live(self, now_ms: int) -> list[SessionPin]:
        rows = await self._reader.fetch(_LIVE, now_ms)
        return [
            SessionPin(session_id=row[0], account_id=row[1], expires_at_ms=row[2]) for row in rows
        ]
