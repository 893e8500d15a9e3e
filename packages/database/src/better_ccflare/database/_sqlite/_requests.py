"""The ``requests`` and ``request_payloads`` tables: request history and stored bodies.

Rows are written with the reference's derived columns too (``prompt_tokens``,
``completion_tokens``, ``total_tokens``) so existing dashboards and queries keep working, and
``cache_creation_input_tokens`` stays the total of all cache writes; the 1-hour share lives in
our own column ``cache_creation_1h_input_tokens``.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database

from better_ccflare.core import (
    AgentAttributionSource,
    BillingType,
    Clock,
    RequestRecord,
    StreamTerminalState,
    TokenUsage,
)

from ._connection import Runner
from ._rollups import reset_rollups
from ._values import enum_or_none
from ._writer import Writer

__all__ = ["SqliteRequests"]

_COLUMNS = (
    "id",
    "timestamp",
    "method",
    "path",
    "account_used",
    "status_code",
    "success",
    "error_message",
    "response_time_ms",
    "failover_attempts",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "output_tokens_per_second",
    "input_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens",
    "output_tokens",
    "agent_used",
    "agent_attribution_source",
    "api_key_id",
    "api_key_name",
    "project",
    "billing_type",
    "original_model",
    "applied_model",
    "stream_terminal_state",
    "client_session_id",
)
# Columns a later record may leave unknown: an upsert keeps the stored value then.
_KEEP_WHEN_NULL = frozenset(
    {
        "account_used",
        "status_code",
        "error_message",
        "response_time_ms",
        "model",
        "output_tokens_per_second",
        "agent_used",
        "agent_attribution_source",
        "api_key_id",
        "api_key_name",
        "project",
        "billing_type",
        "original_model",
        "applied_model",
        "stream_terminal_state",
        "client_session_id",
    }
)
_UPSERT_SQL = (
    f"INSERT INTO requests ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "  # noqa: S608 (fixed names)
    "ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(
        f"{column} = COALESCE(excluded.{column}, requests.{column})"
        if column in _KEEP_WHEN_NULL
        else f"{column} = excluded.{column}"
        for column in _COLUMNS[1:]
    )
)
_PAYLOAD_SQL = (
    "INSERT INTO request_payloads (id, json, timestamp) VALUES (?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET json = excluded.json, timestamp = excluded.timestamp"
)


def _request_values(record: RequestRecord) -> tuple[object, ...]:
    usage = record.usage
    return (
        record.id,
        record.timestamp_ms,
        record.method,
        record.path,
        record.account_id,
        record.status_code,
        record.success,
        record.error_message,
        record.response_time_ms,
        record.failover_attempts,
        record.model,
        usage.prompt_tokens,
        usage.output_tokens,
        usage.total_tokens,
        record.cost_usd,
        record.output_tokens_per_second,
        usage.input_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_write_1h_input_tokens,
        usage.output_tokens,
        record.agent_used,
        record.agent_attribution_source,
        record.api_key_id,
        record.api_key_name,
        record.project,
        record.billing_type,
        record.original_model,
        record.applied_model,
        record.stream_terminal_state,
        record.client_session_id,
    )


def request_from_row(row: sqlite3.Row) -> RequestRecord:
    """Build a :class:`RequestRecord`; rows older than the token breakdown fall back to totals."""
    cache_writes = row["cache_creation_input_tokens"] or 0
    cache_writes_1h = row["cache_creation_1h_input_tokens"] or 0
    input_tokens = row["input_tokens"]
    output_tokens = row["output_tokens"]
    return RequestRecord(
        id=row["id"],
        timestamp_ms=row["timestamp"],
        method=row["method"] or "",
        path=row["path"] or "",
        account_id=row["account_used"],
        status_code=row["status_code"],
        success=bool(row["success"]),
        error_message=row["error_message"],
        response_time_ms=row["response_time_ms"],
        failover_attempts=row["failover_attempts"] or 0,
        model=row["model"],
        usage=TokenUsage(
            input_tokens=(row["prompt_tokens"] if input_tokens is None else input_tokens) or 0,
            output_tokens=(row["completion_tokens"] if output_tokens is None else output_tokens)
            or 0,
            cache_read_input_tokens=row["cache_read_input_tokens"] or 0,
            cache_write_5m_input_tokens=max(cache_writes - cache_writes_1h, 0),
            cache_write_1h_input_tokens=cache_writes_1h,
        ),
        cost_usd=row["cost_usd"],  # NULL: no price was known
        output_tokens_per_second=row["output_tokens_per_second"],
        agent_used=row["agent_used"],
        agent_attribution_source=enum_or_none(
            AgentAttributionSource, row["agent_attribution_source"]
        ),
        api_key_id=row["api_key_id"],
        api_key_name=row["api_key_name"],
        project=row["project"],
        billing_type=enum_or_none(BillingType, row["billing_type"]),
        original_model=row["original_model"],
        applied_model=row["applied_model"],
        stream_terminal_state=enum_or_none(StreamTerminalState, row["stream_terminal_state"]),
        client_session_id=row["client_session_id"],
    )


class SqliteRequests:
    """:class:`~better_ccflare.database.RequestRepository` on SQLite."""

    __slots__ = ("_clock", "_reader", "_writer")

    def __init__(self, reader: Runner, writer: Writer, clock: Clock) -> None:
        self._reader = reader
        self._writer = writer
        self._clock = clock

    def record(self, record: RequestRecord) -> None:
        values = _request_values(record)
        self._writer.enqueue(
            lambda db: db.conn.execute(_UPSERT_SQL, values), label=f"requests.record({record.id})"
        )

    def record_payload(self, request_id: str, payload_json: bytes | str) -> bool:
        timestamp_ms = self._clock.now_ms()

        def insert(db: Database) -> None:
            text = payload_json.decode() if isinstance(payload_json, bytes) else payload_json
            db.conn.execute(_PAYLOAD_SQL, (request_id, text, timestamp_ms))

        # len() of a str counts characters, close enough to bytes for mostly-ASCII JSON and free.
        return self._writer.enqueue(
            insert,
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
