"""The ``requests`` and ``request_payloads`` tables: request history and stored bodies."""

from __future__ import annotations

from sqlite_utils import Database

from better_ccflare.core import Clock, RequestRecord
from better_ccflare.database._rows import (
    request_from_row,
    request_upsert_sql,
    request_values,
)

from ._connection import Runner
from ._rollups import reset_rollups
from ._writer import Writer

__all__ = ["SqliteRequests"]

_UPSERT_SQL = request_upsert_sql("qmark")
_PAYLOAD_SQL = (
    # CAST: bytes bind as a BLOB; the column holds the JSON as text (UTF-8, as sent).
    "INSERT INTO request_payloads (id, json, timestamp) VALUES (?, CAST(? AS TEXT), ?) "
    "ON CONFLICT(id) DO UPDATE SET json = excluded.json, timestamp = excluded.timestamp"
)


class SqliteRequests:
    """:class:`~better_ccflare.database.RequestRepository` on SQLite."""

    __slots__ = ("_clock", "_reader", "_writer")

    def __init__(self, reader: Runner, writer: Writer, clock: Clock) -> None:
        self._reader = reader
        self._writer = writer
        self._clock = clock

    def record(self, record: RequestRecord) -> None:
        self._writer.enqueue_statement(
            _UPSERT_SQL, request_values(record), label=f"requests.record({record.id})"
        )

    def record_payload(self, request_id: str, payload_json: bytes | str) -> bool:
        # len() of a str counts characters, close enough to bytes for mostly-ASCII JSON and free.
        return self._writer.enqueue_statement(
            _PAYLOAD_SQL,
            (request_id, payload_json, self._clock.now_ms()),
            label=f"requests.record_payload({request_id})",
            payload_bytes=max(len(payload_json), 1),
        )

    async def get(self, request_id: str) -> RequestRecord | None:
        records = await self._select("WHERE id = ?", (request_id,))
        return records[0] if records else None

    async def list_recent(
        self, limit: int, *, account_id: str | None = None, before_ms: int | None = None
    ) -> list[RequestRecord]:
        conditions: list[str] = []
        params: list[object] = []
        if account_id is not None:
            conditions.append("account_used = ?")
            params.append(account_id)
        if before_ms is not None:
            conditions.append("timestamp < ?")
            params.append(before_ms)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        return await self._select(f"{where} ORDER BY timestamp DESC, id LIMIT ?", (*params, limit))

    async def get_payload(self, request_id: str) -> str | None:
        def select(db: Database) -> str | None:
            row = db.conn.execute(
                "SELECT json FROM request_payloads WHERE id = ?", (request_id,)
            ).fetchone()
            return None if row is None else row[0]

        return await self._reader.run(select)

    async def count(self) -> int:
        return await self._reader.run(
            lambda db: db.conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        )

    async def delete_all(self) -> int:
        def delete(db: Database) -> int:
            reset_rollups(db)
            db.conn.execute("DELETE FROM request_payloads")
            deleted = db.conn.execute("DELETE FROM requests").rowcount
            db.conn.execute("UPDATE accounts SET request_count = 0, session_request_count = 0")
            return deleted

        return await self._writer.submit(delete, label="requests.delete_all")

    async def _select(self, clause: str, params: tuple[object, ...]) -> list[RequestRecord]:
        def select(db: Database) -> list[RequestRecord]:
            rows = db.conn.execute(f"SELECT * FROM requests {clause}", params).fetchall()  # noqa: S608 (fixed clauses)
            return [request_from_row(row) for row in rows]

        return await self._reader.run(select)
