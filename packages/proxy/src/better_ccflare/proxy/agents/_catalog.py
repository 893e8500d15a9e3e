"""The agents an operator sees and the preferences they set: what the CLI's ``agent`` group
and the management API's ``/api/agents`` both call, so both show and change the same things.

An agent is listed when its file was discovered or when a preference names it (a preference
set through the header route, for an agent with no file here, is still shown and can be
cleared).
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

from better_ccflare.core import AgentPreference, InvalidInputError, NotFoundError
from better_ccflare.database import AgentPreferenceRepository

from ._discovery import Discovered
from ._workspaces import Workspace

__all__ = [
    "AgentCatalog",
    "AgentEntry",
    "AgentOrigin",
    "agent_catalog",
    "clear_agent_model",
    "set_agent_model",
]

MAX_AGENT_ID = 256
"""The longest agent name the header route accepts, and so the longest a preference may use."""


class AgentOrigin(StrEnum):
    GLOBAL = "global"
    """``~/.claude/agents``."""
    WORKSPACE = "workspace"
    """A registered workspace's ``.claude/agents``."""
    PREFERENCE_ONLY = "preference-only"
    """No file found; only a stored preference names it."""


class AgentEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    origin: AgentOrigin
    description: str = ""
    file_model: str | None = None
    """The model the agent's file asks for (Claude Code's own choice)."""
    preferred_model: str | None = None
    """The model the proxy sends its requests with; ``None``: as the client asked."""
    preference_updated_at_ms: int | None = None
    path: str | None = None
    workspace: str | None = None


class AgentCatalog(msgspec.Struct, frozen=True, kw_only=True):
    agents: tuple[AgentEntry, ...]
    workspaces: tuple[Workspace, ...]


async def agent_catalog(
    discovered: Discovered, preferences: AgentPreferenceRepository
) -> AgentCatalog:
    """Every discovered agent with its preference, then the preferences of agents not found."""
    stored = {p.agent_id: p for p in await preferences.list_all()}
    entries: list[AgentEntry] = []
    for agent in discovered.agents:
        preference = stored.pop(agent.id, None)
        entries.append(
            AgentEntry(
                id=agent.id,
                origin=AgentOrigin.GLOBAL if agent.workspace is None else AgentOrigin.WORKSPACE,
                description=agent.description,
                file_model=agent.model,
                preferred_model=preference.model if preference else None,
                preference_updated_at_ms=preference.updated_at_ms if preference else None,
                path=agent.path,
                workspace=agent.workspace,
            )
        )
    entries.extend(
        AgentEntry(
            id=p.agent_id,
            origin=AgentOrigin.PREFERENCE_ONLY,
            preferred_model=p.model,
            preference_updated_at_ms=p.updated_at_ms,
        )
        for p in stored.values()
    )
    entries.sort(key=lambda e: e.id)
    return AgentCatalog(agents=tuple(entries), workspaces=discovered.workspaces)


async def set_agent_model(
    preferences: AgentPreferenceRepository, agent_id: str, model: str, now_ms: int
) -> AgentPreference:
    """Send ``agent_id``'s requests with ``model`` from the next request on.

    Raises:
        InvalidInputError: An empty model, or an agent name empty or longer than 256.
    """
    agent_id = agent_id.strip()
    model = model.strip()
    if not agent_id or len(agent_id) > MAX_AGENT_ID:
        raise InvalidInputError("agent", f"give the agent's name (1 to {MAX_AGENT_ID} characters)")
    if not model:
        raise InvalidInputError("model", "name the model the agent should use")
    preference = AgentPreference(agent_id=agent_id, model=model, updated_at_ms=now_ms)
    await preferences.set(preference)
    return preference


async def clear_agent_model(preferences: AgentPreferenceRepository, agent_id: str) -> None:
    """Let ``agent_id``'s requests use the model the client asks for again.

    Raises:
        NotFoundError: The agent has no preference.
    """
    if await preferences.get(agent_id) is None:
        raise NotFoundError("agent preference", agent_id)
    await preferences.delete(agent_id)
