"""The ``usage_snapshots`` table on PostgreSQL: history of the providers' usage windows."""

from __future__ import annotations

from better_ccflare.core import UsageSnapshot
from better_ccflare.database._rows import (
    USAGE_SNAPSHOT_COLUMNS,
    insert_sql,
    snapshot_values,
    snapshots_from_rows,
)

from ._connection import Connection, Reader, affected
from ._writer import Writer

__all__ = ["PostgresUsage"]

_INSERT_SQL = insert_sql("usage_snapshots", USAGE_SNAPSHOT_COLUMNS, "numeric")

_COLUMNS = "SELECT timestamp, window_key, utilization, resets_at FROM usage_snapshots"


class PostgresUsage:
    """:class:`~better_ccflare.database.UsageRepository` on PostgreSQL."""

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: Reader, writer: Writer) -> None:
        self._reader = reader
        self._writer = writer

    async def record(self, snapshot: UsageSnapshot) -> None:
        rows = snapshot_values(snapshot)

        async def insert(connection: Connection) -> None:
            await connection.executemany(
                _INSERT_SQL,
                rows,
            )

        await self._writer.submit(insert, label=f"usage.record({snapshot.account_id})")

    async def latest(self, account_id: str) -> UsageSnapshot | None:
        snapshots = await self._select(
            "WHERE account_id = $1 AND timestamp = "
            "(SELECT MAX(timestamp) FROM usage_snapshots WHERE account_id = $1)",
            account_id,
        )
        return snapshots[0] if snapshots else None

    async def series(
        self, account_id: str, since_ms: int, window_key: str | None = None
    ) -> list[UsageSnapshot]:
        if window_key is None:
            return await self._select(
                "WHERE account_id = $1 AND timestamp >= $2", account_id, since_ms
            )
        return await self._select(
            "WHERE account_id = $1 AND timestamp >= $2 AND window_key = $3",
            account_id,
            since_ms,
            window_key,
        )

    async def delete_older_than(self, cutoff_ms: int) -> int:
        async def delete(connection: Connection) -> int:
            return affected(
                await connection.execute(
                    "DELETE FROM usage_snapshots WHERE timestamp < $1", cutoff_ms
                )
            )

        return await self._writer.submit(delete, label="usage.delete_older_than")

    async def _select(self, clause: str, account_id: str, *args: object) -> list[UsageSnapshot]:
        rows = await self._reader.fetch(
            f"{_COLUMNS} {clause} ORDER BY timestamp, seq",
            account_id,
            *args,
        )
        return snapshots_from_rows(account_id, rows)
