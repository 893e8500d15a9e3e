"""Finding the Claude Code subagents on this machine, and remembering them for a short while.

Agents live in ``~/.claude/agents/*.md`` (everyone's) and in each registered workspace's
``.claude/agents/*.md`` (``_workspaces``). Reading them is file I/O, so it runs in a worker
thread, never on the event loop, and the result is kept for 30 seconds (the reference's
discovery cache): a request pays for a directory scan at most twice a minute, and an agent
file written a moment ago is matched within half a minute.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import msgspec

from better_ccflare.core import Clock

from ._agent_file import parse_agent_file
from ._workspaces import Workspace, read_workspaces, register_workspace

__all__ = ["DISCOVERY_TTL_MS", "Agent", "AgentDirectory", "Discovered", "discover_agents"]

_log = logging.getLogger("better_ccflare.proxy.agents")

DISCOVERY_TTL_MS = 30_000


class Agent(msgspec.Struct, frozen=True, kw_only=True):
    """One discovered subagent."""

    id: str
    """Its name: what preferences and ``x-better-ccflare-agent-id`` refer to."""
    description: str
    model: str | None
    """The model its file asks for, shown for information (preferences override it)."""
    prompt: str
    path: str
    workspace: str | None = None
    """The workspace it came from; ``None`` for the user's own agents."""


class Discovered(msgspec.Struct, frozen=True, kw_only=True):
    agents: tuple[Agent, ...] = ()
    workspaces: tuple[Workspace, ...] = ()


def discover_agents(home: Path) -> Discovered:
    """Read every agent file now (blocking): the user's first, then each workspace's."""
    workspaces = tuple(read_workspaces(home))
    agents = list(_agents_in(home / ".claude" / "agents", None))
    for workspace in workspaces:
        agents.extend(_agents_in(Path(workspace.path) / ".claude" / "agents", workspace.path))
    return Discovered(agents=tuple(agents), workspaces=workspaces)


def _agents_in(directory: Path, workspace: str | None) -> list[Agent]:
    try:
        files = sorted(directory.glob("*.md"))
    except OSError:
        return []
    agents: list[Agent] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            _log.debug("Skipping agent file %s: %s", file, exc)
            continue
        parsed = parse_agent_file(text, file.stem)
        agents.append(
            Agent(
                id=parsed.name,
                description=parsed.description,
                model=parsed.model,
                prompt=parsed.prompt,
                path=str(file),
                workspace=workspace,
            )
        )
    return agents


class AgentDirectory:
    """The discovered agents, re-read in a thread at most every :data:`DISCOVERY_TTL_MS`."""

    __slots__ = (
        "_autodiscover",
        "_clock",
        "_current",
        "_home",
        "_loaded_at_ms",
        "_loading",
        "_noticed",
        "_registering",
    )

    def __init__(self, home: Path, clock: Clock, *, autodiscover: bool = False) -> None:
        self._home = home
        self._clock = clock
        self._autodiscover = autodiscover
        self._current = Discovered()
        self._loaded_at_ms: int | None = None
        self._loading: asyncio.Task[Discovered] | None = None
        self._noticed: set[str] = set()
        self._registering: set[asyncio.Task[None]] = set()

    @property
    def autodiscover(self) -> bool:
        """Whether working directories named in prompts are registered as workspaces."""
        return self._autodiscover

    def known_empty(self) -> bool:
        """No agents as of a reading still fresh, and no autodiscovery: nothing to match."""
        if self._autodiscover:
            return False
        fresh = self._fresh_reading()
        return fresh is not None and not fresh.agents

    def _fresh_reading(self) -> Discovered | None:
        """The last reading while it is younger than ``DISCOVERY_TTL_MS``, else ``None``."""
        loaded = self._loaded_at_ms
        if loaded is not None and self._clock.now_ms() - loaded < DISCOVERY_TTL_MS:
            return self._current
        return None

    async def discovered(self) -> Discovered:
        """The agents and workspaces, read again when the last reading is too old."""
        fresh = self._fresh_reading()
        if fresh is not None:
            return fresh
        if self._loading is None:
            # One reading at a time: requests arriving meanwhile wait for the same one.
            self._loading = asyncio.create_task(asyncio.to_thread(discover_agents, self._home))
        loading = self._loading
        try:
            current = await asyncio.shield(loading)
        finally:
            if loading.done() and self._loading is loading:
                self._loading = None
        self._current = current
        self._loaded_at_ms = self._clock.now_ms()
        return current

    def forget(self) -> None:
        """Read the files again on the next call (after an agent or workspace changed)."""
        self._loaded_at_ms = None

    def notice_working_directory(self, path: str) -> None:
        """A request named ``path`` as its working directory: register it as a workspace in
        the background (once per path per run) when autodiscovery is on."""
        if not self._autodiscover or path in self._noticed:
            return
        self._noticed.add(path)
        if any(w.path == path for w in self._current.workspaces):
            return
        task = asyncio.create_task(self._register(path))
        self._registering.add(task)
        task.add_done_callback(self._registering.discard)

    async def _register(self, path: str) -> None:
        try:
            registered = await asyncio.to_thread(
                register_workspace, self._home, path, self._clock.now_ms()
            )
        except OSError as exc:
            _log.warning("Could not register workspace %s: %s", path, exc)
            return
        if registered:
            _log.info("Registered workspace %s for agent discovery", path)
            self.forget()
