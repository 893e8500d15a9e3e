"""The ``agent_preferences`` table: the model each Claude Code subagent should use."""

from __future__ import annotations

from sqlite_utils import Database

from better_ccflare.core import AgentPreference, NotFoundError
from better_ccflare.database._rows import agent_preference_from_row

from ._connection import Runner
from ._writer import Writer

__all__ = ["SqliteAgentPreferences"]


class SqliteAgentPreferences:
    """:class:`~better_ccflare.database.AgentPreferenceRepository` on SQLite."""

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: Runner, writer: Writer) -> None:
        self._reader = reader
        self._writer = writer

    async def set(self, preference: AgentPreference) -> None:
        values = (preference.agent_id, preference.model, preference.updated_at_ms)
        await self._writer.submit(
            lambda db: db.conn.execute(
                "INSERT INTO agent_preferences (agent_id, model, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(agent_id) DO UPDATE SET model = excluded.model, "
                "updated_at = excluded.updated_at",
                values,
            ),
            label=f"agent_preferences.set({preference.agent_id})",
        )

    async def get(self, agent_id: str) -> AgentPreference | None:
        preferences = await self._select("WHERE agent_id = ?", (agent_id,))
        return preferences[0] if preferences else None

    async def list_all(self) -> list[AgentPreference]:
        return await self._select("ORDER BY agent_id", ())

    async def delete(self, agent_id: str) -> None:
        deleted = await self._writer.submit(
            lambda db: (
                db.conn.execute(
                    "DELETE FROM agent_preferences WHERE agent_id = ?", (agent_id,)
                ).rowcount
            ),
            label=f"agent_preferences.delete({agent_id})",
        )
        if not deleted:
            raise NotFoundError("agent preference", agent_id)

    async def _select(self, clause: str, params: tuple[object, ...]) -> list[AgentPreference]:
        def select(db: Database) -> list[AgentPreference]:
            rows = db.conn.execute(f"SELECT * FROM agent_preferences {clause}", params).fetchall()  # noqa: S608 (fixed clauses)
            return [agent_preference_from_row(row) for row in rows]

        return await self._reader.run(select)
