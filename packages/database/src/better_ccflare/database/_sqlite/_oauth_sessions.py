"""The ``oauth_sessions`` table: PKCE logins waiting for the user to paste the code back."""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database

from better_ccflare.core import ConflictError, OAuthSession
from better_ccflare.database._crypto import SecretKey
from better_ccflare.database._rows import (
    OAUTH_SESSION_COLUMNS,
    insert_sql,
    oauth_session_from_row,
    oauth_session_values,
)

from ._connection import Runner
from ._writer import Writer

__all__ = ["SqliteOAuthSessions"]

_INSERT_SQL = insert_sql("oauth_sessions", OAUTH_SESSION_COLUMNS, "qmark")


class SqliteOAuthSessions:
    """:class:`~better_ccflare.database.OAuthSessionRepository` on SQLite."""

    __slots__ = ("_key", "_reader", "_writer")

    def __init__(self, reader: Runner, writer: Writer, key: SecretKey) -> None:
        self._reader = reader
        self._writer = writer
        self._key = key

    async def create(self, session: OAuthSession) -> None:
        def insert(db: Database) -> bool:
            values = oauth_session_values(session, self._key)
            try:
                db.conn.execute(_INSERT_SQL, values)
            except sqlite3.IntegrityError:
                return False
            return True

        if not await self._writer.submit(insert, label=f"oauth_sessions.create({session.id})"):
            raise ConflictError(f"An OAuth session with id {session.id!r} already exists.")

    async def get(self, session_id: str, now_ms: int) -> OAuthSession | None:
        def select(db: Database) -> OAuthSession | None:
            row = db.conn.execute(
                "SELECT * FROM oauth_sessions WHERE id = ? AND expires_at > ?", (session_id, now_ms)
            ).fetchone()
            return None if row is None else oauth_session_from_row(row, self._key)

        return await self._reader.run(select)

    async def delete(self, session_id: str) -> None:
        await self._writer.submit(
            lambda db: db.conn.execute("DELETE FROM oauth_sessions WHERE id = ?", (session_id,)),
            label=f"oauth_sessions.delete({session_id})",
        )

    async def delete_expired(self, now_ms: int) -> int:
        return await self._writer.submit(
            lambda db: (
                db.conn.execute(
                    "DELETE FROM oauth_sessions WHERE expires_at <= ?", (now_ms,)
                ).rowcount
            ),
            label="oauth_sessions.delete_expired",
        )
