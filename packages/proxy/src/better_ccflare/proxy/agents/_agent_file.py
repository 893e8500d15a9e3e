"""A Claude Code subagent file: YAML front matter, then the agent's system prompt.

Claude Code reads ``.claude/agents/<name>.md`` files of this shape::

    ---
    name: reviewer
    description: Reviews diffs
    model: sonnet
    ---
    You are a meticulous code reviewer...

Only the flat ``key: value`` lines of the front matter matter here (``name``, ``description``,
``model``), so they are read by hand instead of with a YAML library: a value may be quoted,
anything else (lists such as ``tools``, comments) is skipped, and a file without front matter
is all prompt. Pure text in, struct out, so hypothesis can drive it.
"""

from __future__ import annotations

import msgspec

__all__ = ["AgentFile", "parse_agent_file"]


class AgentFile(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent file says."""

    name: str
    description: str = ""
    model: str | None = None
    """The model the file asks for (``sonnet``, a model id, ``inherit``), if it names one."""
    prompt: str
    """The body after the front matter, stripped: the agent's system prompt."""


_FENCE = "---"


def parse_agent_file(text: str, default_name: str) -> AgentFile:
    """Read an agent file.

    Args:
        text: The file's contents.
        default_name: The name when the front matter gives none (the file's stem).
    """
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()
    fields: dict[str, str] = {}
    body = text
    if lines and lines[0].rstrip() == _FENCE:
        for end, line in enumerate(lines[1:], start=1):
            if line.rstrip() == _FENCE:
                fields = _fields(lines[1:end])
                body = "\n".join(lines[end + 1 :])
                break
    return AgentFile(
        name=fields.get("name") or default_name,
        description=fields.get("description", ""),
        model=fields.get("model") or None,
        prompt=body.strip(),
    )


def _fields(lines: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in lines:
        if not line or line[0] in " \t#-":
            continue  # a continuation, a list item or a comment
        key, colon, value = line.partition(":")
        if colon:
            fields[key.strip()] = _unquote(value.strip())
    return fields


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value
