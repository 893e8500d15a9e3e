"""The ``api_keys`` table: the proxy's own client keys (stored as salted hashes)."""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database

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

from ._connection import Runner
from ._writer import Writer

__all__ = ["SqliteApiKeys"]

_INSERT_SQL = insert_sql("api_keys", API_KEY_COLUMNS, "qmark")
_USAGE_SQL = KEY_USAGE_SQL.format(since="?")


class SqliteApiKeys:
    """:class:`~better_ccflare.database.ApiKeyRepository` on SQLite."""

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: Runner, writer: Writer) -> None:
        self._reader = reader
        self._writer = writer

    async def add(self, key: ApiKey) -> None:
        values = api_key_values(key)

        def insert(db: Database) -> bool:
            try:
                db.conn.execute(_INSERT_SQL, values)
            except sqlite3.IntegrityError:
                return False
            return True

        if not await self._writer.submit(insert, label=f"api_keys.add({key.id})"):
            raise api_key_conflict(key)

    async def list_all(self) -> list[ApiKey]:
        return await self._select("ORDER BY created_at, id", ())

    async def list_active(self) -> list[ApiKey]:
        return await self._select("WHERE is_active = 1 ORDER BY created_at, id", ())

    async def get(self, id_or_name: str) -> ApiKey | None:
        keys = await self._select(
            "WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1", (id_or_name,) * 3
        )
        return keys[0] if keys else None

    async def set_active(self, key_id: str, active: bool) -> None:
        await self._update(key_id, "is_active = ?", (active,))

    async def set_role(self, key_id: str, role: ApiKeyRole) -> None:
        await self._update(key_id, "role = ?", (role,))

    async def delete(self, key_id: str) -> None:
        deleted = await self._writer.submit(
            lambda db: db.conn.execute("DELETE FROM api_keys WHERE id = ?", (key_id,)).rowcount,
            label=f"api_keys.delete({key_id})",
        )
        if not deleted:
            raise NotFoundError("API key", key_id)

    def touch(self, key_id: str, now_ms: int) -> None:
        self._writer.enqueue_statement(
            "UPDATE api_keys SET last_used = ?, usage_count = COALESCE(usage_count, 0) + 1 "
            "WHERE id = ?",
            (now_ms, key_id),
            label=f"api_keys.touch({key_id})",
        )

    async def count_active(self, role: ApiKeyRole | None = None) -> int:
        sql = "SELECT COUNT(*) FROM api_keys WHERE is_active = 1"
        params: tuple[object, ...] = ()
        if role is not None:
            sql += " AND role = ?"
            params = (role,)
        return await self._reader.run(lambda db: db.conn.execute(sql, params).fetchone()[0])

    async def set_limits(self, key_id: str, limits: KeyLimits | None) -> None:
        await self._update(key_id, "limits = ?", (limits_text(limits),))

    async def usage_since(self, since_ms: int) -> dict[str, KeyUsageTotals]:
        return await self._reader.run(
            lambda db: key_usage_from_rows(db.conn.execute(_USAGE_SQL, (since_ms,)).fetchall())
        )

    async def _update(self, key_id: str, assignments: str, params: tuple[object, ...]) -> None:
        changed = await self._writer.submit(
            lambda db: (
                db.conn.execute(
                    f"UPDATE api_keys SET {assignments} WHERE id = ?",  # noqa: S608 (fixed clauses)
                    (*params, key_id),
                ).rowcount
            ),
            label=f"api_keys.update({key_id})",
        )
        if not changed:
            raise NotFoundError("API key", key_id)

    async def _select(self, clause: str, params: tuple[object, ...]) -> list[ApiKey]:
        def select(db: Database) -> list[ApiKey]:
            rows = db.conn.execute(f"SELECT * FROM api_keys {clause}", params).fetchall()  # noqa: S608 (fixed clauses)
            return [api_key_from_row(row) for row in rows]

        return await self._reader.run(select)
