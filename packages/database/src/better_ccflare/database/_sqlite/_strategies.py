"""The ``strategies`` table: stored settings per load-balancing strategy (JSON ``config``)."""

from __future__ import annotations

from sqlite_utils import Database

from better_ccflare.core import StrategySettings
from better_ccflare.database._rows import strategy_from_row
from better_ccflare.database._values import encode_json

from ._connection import Runner
from ._writer import Writer

__all__ = ["SqliteStrategies"]


class SqliteStrategies:
    """:class:`~better_ccflare.database.StrategyRepository` on SQLite."""

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: Runner, writer: Writer) -> None:
        self._reader = reader
        self._writer = writer

    async def get(self, name: str) -> StrategySettings | None:
        def select(db: Database) -> StrategySettings | None:
            row = db.conn.execute(
                "SELECT name, config, updated_at FROM strategies WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                return None
            return strategy_from_row(row)

        return await self._reader.run(select)

    async def set(self, settings: StrategySettings) -> None:
        values = (settings.name, encode_json(settings.config), settings.updated_at_ms)
        await self._writer.submit(
            lambda db: db.conn.execute(
                "INSERT INTO strategies (name, config, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET config = excluded.config, "
                "updated_at = excluded.updated_at",
                values,
            ),
            label=f"strategies.set({settings.name})",
        )
