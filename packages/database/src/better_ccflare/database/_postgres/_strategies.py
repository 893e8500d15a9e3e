"""The ``strategies`` table on PostgreSQL: stored settings per load-balancing strategy."""

from __future__ import annotations

from better_ccflare.core import StrategySettings
from better_ccflare.database._rows import strategy_from_row
from better_ccflare.database._values import encode_json

from ._connection import Connection, Reader
from ._writer import Writer

__all__ = ["PostgresStrategies"]


class PostgresStrategies:
    """:class:`~better_ccflare.database.StrategyRepository` on PostgreSQL."""

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: Reader, writer: Writer) -> None:
        self._reader = reader
        self._writer = writer

    async def get(self, name: str) -> StrategySettings | None:
        row = await self._reader.fetchrow(
            "SELECT name, config, updated_at FROM strategies WHERE name = $1", name
        )
        if row is None:
            return None
        return strategy_from_row(row)

    async def set(self, settings: StrategySettings) -> None:
        config = encode_json(settings.config)

        async def upsert(connection: Connection) -> None:
            await connection.execute(
                "INSERT INTO strategies (name, config, updated_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO UPDATE SET config = excluded.config, "
                "updated_at = excluded.updated_at",
                settings.name,
                config,
                settings.updated_at_ms,
            )

        await self._writer.submit(upsert, label=f"strategies.set({settings.name})")
