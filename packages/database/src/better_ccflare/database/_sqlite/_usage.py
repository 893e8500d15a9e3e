"""The ``usage_snapshots`` table: append-only history of the providers' usage windows."""

from __future__ import annotations

from collections.abc import Mapping

from sqlite_utils import Database

from better_ccflare.core import UsageSnapshot
from better_ccflare.database._rows import (
    USAGE_SNAPSHOT_COLUMNS,
    insert_sql,
    snapshot_values,
    snapshots_from_rows,
)

from ._connection import Runner
from ._writer import Writer

__all__ = ["SqliteUsage"]

_INSERT_SQL = insert_sql("usage_snapshots", USAGE_SNAPSHOT_COLUMNS, "qmark")


class SqliteUsage:
    """:class:`~better_ccflare.database.UsageRepository` on SQLite."""

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: Runner, writer: Writer) -> None:
        self._reader = reader
        self._writer = writer

    async def record(self, snapshot: UsageSnapshot) -> None:
        rows = snapshot_values(snapshot)
        await self._writer.submit(
            lambda db: db.conn.executemany(
                _INSERT_SQL,
                rows,
            ),
            label=f"usage.record({snapshot.account_id})",
        )

    async def latest(self, account_id: str) -> UsageSnapshot | None:
        snapshots = await self._select(
            "WHERE account_id = :account AND timestamp = "
            "(SELECT MAX(timestamp) FROM usage_snapshots WHERE account_id = :account)",
            {"account": account_id},
            account_id,
        )
        return snapshots[0] if snapshots else None

    async def series(
        self, account_id: str, since_ms: int, window_key: str | None = None
    ) -> list[UsageSnapshot]:
        clause = "WHERE account_id = :account AND timestamp >= :since"
        if window_key is not None:
            clause += " AND window_key = :window"
        params = {"account": account_id, "since": since_ms, "window": window_key}
        return await self._select(clause, params, account_id)

    async def delete_older_than(self, cutoff_ms: int) -> int:
        return await self._writer.submit(
            lambda db: (
                db.conn.execute(
                    "DELETE FROM usage_snapshots WHERE timestamp < ?", (cutoff_ms,)
                ).rowcount
            ),
            label="usage.delete_older_than",
        )

    async def _select(
        self, clause: str, params: Mapping[str, object], account_id: str
    ) -> list[UsageSnapshot]:
        def select(db: Database) -> list[UsageSnapshot]:
            rows = db.conn.execute(
                f"SELECT timestamp, window_key, utilization, resets_at FROM usage_snapshots "  # noqa: S608 (fixed clauses)
                f"{clause} ORDER BY timestamp, rowid",
                params,
            ).fetchall()
            return snapshots_from_rows(account_id, rows)

        return await self._reader.run(select)
