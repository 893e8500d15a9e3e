"""The agent interceptor: which subagent sent a request, and the model its preference asks for.

It runs once per request, before an account is chosen, so routing sees the model the request
will really use. In order (the reference's): an explicit ``x-better-ccflare-agent-id`` (or the
legacy ``x-anthropic-agent-id``) header; otherwise a discovered agent whose prompt is part of
the request's system prompt. If that agent has a stored preference naming another model, the
body's ``model`` is rewritten to it.

A request from no agent pays for two header lookups and, only while agents exist on disk, for
decoding its ``system`` field and a substring search per agent; the preference is read from
the database only for a request that came from an agent, so a preference set from the CLI
applies from the next request on.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from better_ccflare.core import AgentAttributionSource
from better_ccflare.database import AgentPreferenceRepository
from better_ccflare.providers import decode_json_object
from better_ccflare.proxy._request_checks import Routing

from ._catalog import MAX_AGENT_ID
from ._discovery import AgentDirectory
from ._matching import match_agent, system_prompt
from ._workspaces import workspace_in_prompt

__all__ = ["AGENT_HEADERS", "AgentInterceptor", "AgentMatch"]

AGENT_HEADERS = ("x-better-ccflare-agent-id", "x-anthropic-agent-id")
"""Headers naming the agent explicitly, preferred first."""


class AgentMatch(msgspec.Struct, frozen=True, kw_only=True):
    """The agent a request came from, and the request as it goes on."""

    agent_id: str
    source: AgentAttributionSource
    body: bytes
    """The body to forward: rewritten when a preference replaced the model."""
    routing: Routing
    original_model: str | None = None
    """The model the client asked for, when a preference replaced it."""

    @property
    def rewritten(self) -> bool:
        return self.original_model is not None


class AgentInterceptor:
    """Attributes requests to agents and applies their model preferences."""

    __slots__ = ("_directory", "_preferences")

    def __init__(self, directory: AgentDirectory, preferences: AgentPreferenceRepository) -> None:
        self._directory = directory
        self._preferences = preferences

    @property
    def directory(self) -> AgentDirectory:
        return self._directory

    def finds_nothing(self, headers: Mapping[str, str]) -> bool:
        """Whether :meth:`resolve` is sure to find no agent, known without reading anything: no
        agent header, no agent files as of a fresh reading, no autodiscovery. That is the usual
        request when no agents are set up, so it is answered without a coroutine."""
        for header in AGENT_HEADERS:
            if header in headers:
                return False
        return self._directory.known_empty()

    async def resolve(
        self, headers: Mapping[str, str], body: bytes, routing: Routing
    ) -> AgentMatch | None:
        """The agent ``headers`` or the system prompt in ``body`` name; None for no agent."""
        for header in AGENT_HEADERS:
            agent_id = headers.get(header)
            if agent_id:
                if len(agent_id) > MAX_AGENT_ID:
                    return None
                return await self._apply(agent_id, AgentAttributionSource.HEADER, body, routing)
        directory = self._directory
        discovered = await directory.discovered()
        if not discovered.agents and not directory.autodiscover:
            return None
        prompt = system_prompt(body)
        if prompt is None:
            return None
        if directory.autodiscover:
            working_directory = workspace_in_prompt(prompt)
            if working_directory is not None:
                directory.notice_working_directory(working_directory)
        agent = match_agent(prompt, discovered.agents)
        if agent is None:
            return None
        return await self._apply(agent.id, AgentAttributionSource.PROMPT, body, routing)

    async def _apply(
        self, agent_id: str, source: AgentAttributionSource, body: bytes, routing: Routing
    ) -> AgentMatch:
        unchanged = AgentMatch(agent_id=agent_id, source=source, body=body, routing=routing)
        preference = await self._preferences.get(agent_id)
        if preference is None or preference.model == routing.model:
            return unchanged
        rewritten = _with_model(body, preference.model)
        if rewritten is None:
            return unchanged
        return AgentMatch(
            agent_id=agent_id,
            source=source,
            body=rewritten,
            routing=msgspec.structs.replace(routing, model=preference.model),
            original_model=routing.model,
        )


def _with_model(body: bytes, model: str) -> bytes | None:
    """``body`` with its ``model`` set to ``model``; None when it is not a JSON object."""
    fields = decode_json_object(body)
    if fields is None:
        return None
    fields["model"] = model
    return msgspec.json.encode(fields)
