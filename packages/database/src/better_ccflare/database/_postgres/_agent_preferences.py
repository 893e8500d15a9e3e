"""The ``agent_preferences`` table on PostgreSQL: the model each Claude Code subagent uses."""

from __future__ import annotations

from better_ccflare.core import AgentPreference, NotFoundError
from better_ccflare.database._rows import agent_preference_from_row

from ._connection import Connection, Reader, affected
from ._writer import Writer

__all__ = ["PostgresAgentPreferences"]


class PostgresAgentPreferences:
    """:class:`~better_ccflare.database.AgentPreferenceRepository` on PostgreSQL."""

    __slots__ = ("_reader", "_writer")

    def __init__(self, reader: Reader, writer: Writer) -> None:
        self._reader = reader
        self._writer = writer

    async def set(self, preference: AgentPreference) -> None:
        async def upsert(connection: Connection) -> None:
            await connection.execute(
                "INSERT INTO agent_preferences (agent_id, model, updated_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (agent_id) DO UPDATE SET model = excluded.model, "
                "updated_at = excluded.updated_at",
                preference.agent_id,
                preference.model,
                preference.updated_at_ms,
            )

        await self._writer.submit(upsert, label=f"agent_preferences.set({preference.agent_id})")

    async def get(self, agent_id: str) -> AgentPreference | None:
        row = await self._reader.fetchrow(
            "SELECT * FROM agent_preferences WHERE agent_id = $1", agent_id
        )
        return None if row is None else agent_preference_from_row(row)

    async def list_all(self) -> list[AgentPreference]:
        rows = await self._reader.fetch("SELECT * FROM agent_preferences ORDER BY agent_id")
        return [agent_preference_from_row(row) for row in rows]

    async def delete(self, agent_id: str) -> None:
        async def delete(connection: Connection) -> int:
            return affected(
                await connection.execute(
                    "DELETE FROM agent_preferences WHERE agent_id = $1", agent_id
                )
            )

        if not await self._writer.submit(delete, label=f"agent_preferences.delete({agent_id})"):
            raise NotFoundError("agent preference", agent_id)
