"""A small reader for ``.env`` files.

Only the common subset is supported: ``KEY=value`` lines, optional ``export`` prefix, ``#``
comments, and single- or double-quoted values (double quotes understand ``\\n`` and ``\\"``).
Variable interpolation is deliberately not supported: a ``$`` is kept literally.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["parse_dotenv", "read_dotenv"]

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse the text of a ``.env`` file; lines that are not assignments are skipped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        key, raw = match.groups()
        values[key] = _unquote(raw)
    return values


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1]
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        inner = raw[1:-1]
        return inner.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
    # Unquoted: an inline comment starts at " #".
    comment = raw.find(" #")
    return (raw[:comment] if comment >= 0 else raw).strip()


def read_dotenv(path: Path) -> dict[str, str]:
    """Read ``path`` if it exists; a missing file is an empty mapping."""
    try:
        return parse_dotenv(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
