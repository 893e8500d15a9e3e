"""The ``api_keys`` table on PostgreSQL: the proxy's own client keys (stored as salted hashes)."""

from __future__ import annotations

from better_ccflare.core import ApiKey, ApiKeyRole, KeyLimits, KeyUsageTotals, NotFoundError
from better_ccflare.database._rows import (
    API_KEY_COLUMNS,
    KEY_USAGE_SQL,
    api_key_conflict,
    api_key_from_row,
    api_key_values,
    insert_sql,
    key_usage_from_rows,
    limits_text,
)

from ._connection import Connection, Reader, affected, unless_taken
from ._writer import Writer

__all__ = ["PostgresApiKeys"]

_INSERT_SQL = insert_sql("api_keys", API_KEY_COLUMNS, "numeric")
_ORDER = "ORDER BY created_at, id"
_USAGE_SQL = KEY_USAGE_SQL.format(since="$1")


class PostgresApiKeys:
    """:class:`~better_ccflare.database.ApiKeyRepository` on PostgreSQL."""

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: Reader, writer: Writer) -> None:
        self._reader = reader
        self._writer = writer

    async def add(self, key: ApiKey) -> None:
        values = api_key_values(key)

        insert = unless_taken(_INSERT_SQL, *values)
        if await self._writer.submit(insert, label=f"api_keys.add({key.id})") is None:
            raise api_key_conflict(key)

    async def list_all(self) -> list[ApiKey]:
        return await self._select(_ORDER)

    async def list_active(self) -> list[ApiKey]:
        return await self._select(f"WHERE is_active {_ORDER}")

    async def get(self, id_or_name: str) -> ApiKey | None:
        keys = await self._select(
            "WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1", id_or_name
        )
        return keys[0] if keys else None

    async def set_active(self, key_id: str, active: bool) -> None:
        await self._update(key_id, "is_active = $1", active)

    async def set_role(self, key_id: str, role: ApiKeyRole) -> None:
        await self._update(key_id, "role = $1", str(role))

    async def delete(self, key_id: str) -> None:
        async def delete(connection: Connection) -> int:
            return affected(await connection.execute("DELETE FROM api_keys WHERE id = $1", key_id))

        if not await self._writer.submit(delete, label=f"api_keys.delete({key_id})"):
            raise NotFoundError("API key", key_id)

    def touch(self, key_id: str, now_ms: int) -> None:
        self._writer.enqueue_statement(
            "UPDATE api_keys SET last_used = $1, usage_count = COALESCE(usage_count, 0) + 1 "
            "WHERE id = $2",
            (now_ms, key_id),
            label=f"api_keys.touch({key_id})",
        )

    async def count_active(self, role: ApiKeyRole | None = None) -> int:
        if role is None:
            return await self._reader.fetchval("SELECT COUNT(*) FROM api_keys WHERE is_active")
        return await self._reader.fetchval(
            "SELECT COUNT(*) FROM api_keys WHERE is_active AND role = $1", str(role)
        )

    async def set_limits(self, key_id: str, limits: KeyLimits | None) -> None:
        await self._update(key_id, "limits = $1", limits_text(limits))

    async def usage_since(self, since_ms: int) -> dict[str, KeyUsageTotals]:
        return key_usage_from_rows(await self._reader.fetch(_USAGE_SQL, since_ms))

    async def _update(self, key_id: str, assignment: str, value: object) -> None:
        sql = f"UPDATE api_keys SET {assignment} WHERE id = $2"  # noqa: S608 (fixed clauses)

        async def update(connection: Connection) -> int:
            return affected(await connection.execute(sql, value, key_id))

        if not await self._writer.submit(update, label=f"api_keys.update({key_id})"):
            raise NotFoundError("API key", key_id)

    async def _select(self, clause: str, *args: object) -> list[ApiKey]:
        rows = await self._reader.fetch(f"SELECT * FROM api_keys {clause}", *args)  # noqa: S608 (fixed clauses)
        return [api_key_from_row(row) for row in rows]
