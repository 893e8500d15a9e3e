"""Registered workspaces: project directories whose ``.claude/agents`` are discovered too.

The registry is the reference's own file, ``~/.better-ccflare/workspaces.json``
(``{"version": 1, "workspaces": [{"path", "name", "lastSeen"}]}``), so a user coming from the
TypeScript better-ccflare keeps the workspaces it found. A workspace is registered when a Claude
Code system prompt names its working directory and the operator opted in
(``BETTER_CCFLARE_AGENT_WORKSPACE_AUTODISCOVER``); one not seen for seven days is dropped the
next time the file is written. Everything here is blocking file I/O: callers run it in a thread.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Annotated

import msgspec

__all__ = [
    "WORKSPACE_TTL_MS",
    "Workspace",
    "read_workspaces",
    "register_workspace",
    "workspace_in_prompt",
    "workspaces_file",
]

WORKSPACE_TTL_MS = 7 * 24 * 3_600_000
"""A workspace not seen for this long is dropped from the registry."""


class Workspace(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    path: Annotated[str, msgspec.Meta(description="The workspace's directory")]
    name: Annotated[str, msgspec.Meta(description="Its name (the directory's)")]
    last_seen: Annotated[
        int, msgspec.Meta(description="When a request last named it (epoch ms)")
    ] = 0


class _Registry(msgspec.Struct, kw_only=True):
    version: int = 1
    workspaces: list[Workspace] = msgspec.field(default_factory=list[Workspace])


_WORKING_DIRECTORY = re.compile(r"^\s*Working directory:\s*(/[^\n]*?)\s*$", re.MULTILINE)


def workspaces_file(home: Path) -> Path:
    return home / ".better-ccflare" / "workspaces.json"


def workspace_in_prompt(prompt: str) -> str | None:
    """The working directory a Claude Code system prompt names (its ``<env>`` section)."""
    found = _WORKING_DIRECTORY.search(prompt)
    return found.group(1).rstrip("/") or None if found else None


def read_workspaces(home: Path) -> list[Workspace]:
    """The registered workspaces; none when the file is missing or unreadable."""
    try:
        raw = workspaces_file(home).read_bytes()
    except OSError:
        return []
    try:
        return msgspec.json.decode(raw, type=_Registry).workspaces
    except (msgspec.DecodeError, msgspec.ValidationError):
        return []


def register_workspace(home: Path, path: str, now_ms: int) -> bool:
    """Record that ``path`` was seen now; False when it has no ``.claude/agents`` directory.

    Workspaces not seen for :data:`WORKSPACE_TTL_MS` are dropped on the way. The file is
    replaced atomically, so a reader never sees half of it.
    """
    if not (Path(path) / ".claude" / "agents").is_dir():
        return False
    kept = [
        w
        for w in read_workspaces(home)
        if w.path != path and now_ms - w.last_seen < WORKSPACE_TTL_MS
    ]
    kept.append(Workspace(path=path, name=Path(path).name, last_seen=now_ms))
    target = workspaces_file(home)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".json.tmp")
    partial.write_bytes(msgspec.json.format(msgspec.json.encode(_Registry(workspaces=kept))))
    try:
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return True
