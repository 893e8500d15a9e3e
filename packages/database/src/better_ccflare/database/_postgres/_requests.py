"""The ``requests`` and ``request_payloads`` tables on PostgreSQL."""

from __future__ import annotations

from better_ccflare.core import Clock, RequestRecord
from better_ccflare.database._rows import request_from_row, request_upsert_sql, request_values

from ._connection import Connection, Reader, affected
from ._writer import Writer

__all__ = ["PostgresRequests"]

_UPSERT_SQL = request_upsert_sql("numeric")
_PAYLOAD_SQL = (
    "INSERT INTO request_payloads (id, json, timestamp) VALUES ($1, $2, $3) "
    "ON CONFLICT (id) DO UPDATE SET json = excluded.json, timestamp = excluded.timestamp"
)


class PostgresRequests:
    """:class:`~better_ccflare.database.RequestRepository` on PostgreSQL."""

    __slots__ = ("_clock", "_reader", "_writer")

    def __init__(self, reader: Reader, writer: Writer, clock: Clock) -> None:
        self._reader = reader
        self._writer = writer
        self._clock = clock

    def record(self, record: RequestRecord) -> None:
        self._writer.enqueue_statement(
            _UPSERT_SQL, request_values(record), label=f"requests.record({record.id})"
        )

    def record_payload(self, request_id: str, payload_json: bytes | str) -> bool:
        # Decoding waits for the writer too; len() of a str is close enough to its bytes.
        text = payload_json.decode() if isinstance(payload_json, bytes) else payload_json
        return self._writer.enqueue_statement(
            _PAYLOAD_SQL,
            (request_id, text, self._clock.now_ms()),
            label=f"requests.record_payload({request_id})",
            payload_bytes=max(len(payload_json), 1),
        )

    async def get(self, request_id: str) -> RequestRecord | None:
        records = await self._select("WHERE id = $1", request_id)
        return records[0] if records else None

    async def list_recent(
        self, limit: int, *, account_id: str | None = None, before_ms: int | None = None
    ) -> list[RequestRecord]:
        conditions: list[str] = []
        args: list[object] = []
        if account_id is not None:
            args.append(account_id)
            conditions.append(f"account_used = ${len(args)}")
        if before_ms is not None:
            args.append(before_ms)
            conditions.append(f"timestamp < ${len(args)}")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        args.append(limit)
        return await self._select(f"{where} ORDER BY timestamp DESC, id LIMIT ${len(args)}", *args)

    async def get_payload(self, request_id: str) -> str | None:
        return await self._reader.fetchval(
            "SELECT json FROM request_payloads WHERE id = $1", request_id
        )

    async def count(self) -> int:
        return await self._reader.fetchval("SELECT COUNT(*) FROM requests")

    async def delete_all(self) -> int:
        async def delete(connection: Connection) -> int:
            await connection.execute("DELETE FROM request_payloads")
            deleted = affected(await connection.execute("DELETE FROM requests"))
            await connection.execute(
                "UPDATE accounts SET request_count = 0, session_request_count = 0"
            )
            return deleted

        return await self._writer.submit(delete, label="requests.delete_all")

    async def _select(self, clause: str, *args: object) -> list[RequestRecord]:
        rows = await self._reader.fetch(f"SELECT * FROM requests {clause}", *args)  # noqa: S608 (fixed clauses)
        return [request_from_row(row) for row in rows]
