"""The ``oauth_sessions`` table on PostgreSQL: PKCE logins waiting for the code to come back."""

from __future__ import annotations

from better_ccflare.core import ConflictError, OAuthSession
from better_ccflare.database._crypto import SecretKey
from better_ccflare.database._rows import (
    OAUTH_SESSION_COLUMNS,
    insert_sql,
    oauth_session_from_row,
    oauth_session_values,
)

from ._connection import Connection, Reader, affected, unless_taken
from ._writer import Writer

__all__ = ["PostgresOAuthSessions"]

_INSERT_SQL = insert_sql("oauth_sessions", OAUTH_SESSION_COLUMNS, "numeric")


class PostgresOAuthSessions:
    """:class:`~better_ccflare.database.OAuthSessionRepository` on PostgreSQL."""

    __slots__ = ("_key", "_reader", "_writer")

    def __init__(self, reader: Reader, writer: Writer, key: SecretKey) -> None:
        self._reader = reader
        self._writer = writer
        self._key = key

    async def create(self, session: OAuthSession) -> None:
        values = oauth_session_values(session, self._key)

        insert = unless_taken(_INSERT_SQL, *values)
        if await self._writer.submit(insert, label=f"oauth_sessions.create({session.id})") is None:
            raise ConflictError(f"An OAuth session with id {session.id!r} already exists.")

    async def get(self, session_id: str, now_ms: int) -> OAuthSession | None:
        row = await self._reader.fetchrow(
            "SELECT * FROM oauth_sessions WHERE id = $1 AND expires_at > $2", session_id, now_ms
        )
        return None if row is None else oauth_session_from_row(row, self._key)

    async def delete(self, session_id: str) -> None:
        async def delete(connection: Connection) -> None:
            await connection.execute("DELETE FROM oauth_sessions WHERE id = $1", session_id)

        await self._writer.submit(delete, label=f"oauth_sessions.delete({session_id})")

    async def delete_expired(self, now_ms: int) -> int:
        async def delete(connection: Connection) -> int:
            return affected(
                await connection.execute(
                    "DELETE FROM oauth_sessions WHERE expires_at <= $1", now_ms
                )
            )

        return await self._writer.submit(delete, label="oauth_sessions.delete_expired")
