"""The ``oauth_sessions`` table: PKCE logins waiting for the user to paste the code back.

The PKCE verifier is encrypted like the account credentials: together with an intercepted
authorization code it would be enough to log in.
"""

from __future__ import annotations

import logging
import sqlite3

from sqlite_utils import Database

from better_ccflare.core import ConflictError, OAuthMode, OAuthSession
from better_ccflare.database._crypto import SecretKey

from ._connection import Runner
from ._values import enum_or_none, open_secret
from ._writer import Writer

__all__ = ["SqliteOAuthSessions"]

_log = logging.getLogger("better_ccflare.database")
_INSERT_SQL = (
    "INSERT INTO oauth_sessions (id, account_name, verifier, mode, custom_endpoint, priority, "
    "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# The reference accepted "max" as an alias of claude-oauth.
_MODE_ALIASES = {"max": OAuthMode.CLAUDE_OAUTH}


def oauth_session_from_row(row: sqlite3.Row, key: SecretKey) -> OAuthSession | None:
    """The session, or ``None`` when its mode is unknown to this version (it cannot finish)."""
    mode = _MODE_ALIASES.get(row["mode"]) or enum_or_none(OAuthMode, row["mode"])
    if mode is None:
        _log.warning("Ignoring OAuth session %s with unknown mode %r.", row["id"], row["mode"])
        return None
    return OAuthSession(
        id=row["id"],
        account_name=row["account_name"],
        verifier=open_secret(row["verifier"], key) or "",
        mode=mode,
        created_at_ms=row["created_at"],
        expires_at_ms=row["expires_at"],
        custom_endpoint=row["custom_endpoint"],
        priority=row["priority"] or 0,
    )


class SqliteOAuthSessions:
    """:class:`~better_ccflare.database.OAuthSessionRepository` on SQLite."""

    __slots__ = ("_key", "_reader", "_writer")

    def __init__(self, reader: Runner, writer: Writer, key: SecretKey) -> None:
        self._reader = reader
        self._writer = writer
        self._key = key

    async def create(self, session: OAuthSession) -> None:
        def insert(db: Database) -> bool:
            values = (
                session.id,
                session.account_name,
                self._key.encrypt(session.verifier),
                session.mode,
                session.custom_endpoint,
                session.priority,
                session.created_at_ms,
                session.expires_at_ms,
            )
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
