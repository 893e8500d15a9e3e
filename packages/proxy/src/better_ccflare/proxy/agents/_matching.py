"""Which discovered agent a request comes from, judged by its system prompt.

Claude Code sends a subagent's request with the agent file's body inside the system prompt, so
the agent is the one whose prompt is a substring of it (the reference's rule); when several
are, the longest prompt wins, being the most specific. Only the body's ``system`` field is
decoded (a string or text blocks); the messages are skipped unread.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ._discovery import Agent

__all__ = ["match_agent", "system_prompt"]


class _Block(msgspec.Struct):
    type: str = ""
    text: str | None = None


class _System(msgspec.Struct):
    system: str | list[_Block] | None = None


_SYSTEM = msgspec.json.Decoder(_System)


def system_prompt(body: bytes) -> str | None:
    """The request's system prompt, its text blocks joined by newlines; None without one."""
    try:
        system = _SYSTEM.decode(body).system
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if system is None or isinstance(system, str):
        return system or None
    return "\n".join(b.text for b in system if b.type == "text" and b.text) or None


def match_agent(prompt: str, agents: Iterable[Agent]) -> Agent | None:
    """The agent whose (non-empty) prompt appears in ``prompt``; the longest when several do."""
    best: Agent | None = None
    for agent in agents:
        longer = best is None or len(agent.prompt) > len(best.prompt)
        if longer and agent.prompt and agent.prompt in prompt:
            best = agent
    return best
