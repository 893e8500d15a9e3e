"""Command module: ``statusline``, one line for Claude Code's status bar.

Claude Code runs the ``statusLine`` command of its settings after each turn and pipes it a JSON
object whose ``session_id`` is the session's id, the same id the proxy keys requests by. This
prints which account serves that session and how much of its 5-hour and 7-day windows is used,
with the soonest reset, from ``GET /api/sessions/{id}/account``.

It finds the server and the key the way Claude Code's own environment names them
(``ANTHROPIC_BASE_URL``; ``ANTHROPIC_AUTH_TOKEN`` or ``ANTHROPIC_API_KEY``), else the local
configuration's host and port. A status bar must never show a traceback or hang the prompt:
every failure prints a short line instead, the exit status is always 0, and the request gives
up after a second. It imports only what it needs (no server, no database), since Claude Code
runs it often: ``better_ccflare.cli._entry`` takes this path before loading the other commands.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import IO

import click
import msgspec

__all__ = ["run_statusline", "status_line", "statusline"]

TIMEOUT_S = 1.0
_PREFIX = "ccflare"
_SHOWN_WINDOWS = (("five_hour", "5h"), ("seven_day", "7d"))


class _Window(msgspec.Struct, frozen=True, rename="camel"):
    key: str
    utilization: float
    resets_at: int | None = None


class _Account(msgspec.Struct, frozen=True):
    name: str
    windows: list[_Window] = msgspec.field(default_factory=list[_Window])


class _SessionAnswer(msgspec.Struct, frozen=True):
    status: str
    account: _Account | None = None


class _StatusInput(msgspec.Struct, frozen=True):
    session_id: str | None = None


class _UnreachableError(Exception):
    """The server could not be asked, or answered something else than the session."""


def run_statusline(stdin: IO[str], environ: Mapping[str, str]) -> str:
    """The line for Claude Code's status bar, given what it pipes in and the environment.

    Never raises: any failure becomes a short line saying what went wrong.
    """
    try:
        session = msgspec.json.decode(stdin.read() or "{}", type=_StatusInput).session_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return f"{_PREFIX}: no session id on stdin"
    if not session:
        return f"{_PREFIX}: no session yet"
    try:
        base = _server_url(environ)
        answer = _ask(base, session, _key(environ))
    except _UnreachableError as exc:
        return f"{_PREFIX}: {exc}"
    except Exception as exc:  # a status bar shows a word, never a traceback
        return f"{_PREFIX}: unavailable ({type(exc).__name__})"
    return status_line(answer.account, time.time())


def status_line(account: _Account | None, now_s: float) -> str:
    """``ccflare: NAME · 5h 42% · 7d 13% · resets in 1h05m``, or that the session is unknown."""
    if account is None:
        return f"{_PREFIX}: session not served yet"
    parts = [f"{_PREFIX}: {account.name}"]
    resets: list[int] = []
    by_key = {w.key: w for w in account.windows}
    for key, short in _SHOWN_WINDOWS:
        window = by_key.get(key)
        if window is None:
            continue
        parts.append(f"{short} {round(window.utilization)}%")
        if window.resets_at is not None and window.resets_at > now_s * 1000:
            resets.append(window.resets_at)
    if resets:
        parts.append(f"resets in {_duration(min(resets) / 1000 - now_s)}")
    return " · ".join(parts)


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{round(hours / 24)}d"


def _server_url(environ: Mapping[str, str]) -> str:
    """``ANTHROPIC_BASE_URL``, else the address the local configuration serves on."""
    base = environ.get("ANTHROPIC_BASE_URL", "").strip()
    if base:
        return base.rstrip("/")
    # Imported here: the common case (ANTHROPIC_BASE_URL set) starts without the config code.
    from better_ccflare.core import BetterCcflareError, load_config  # noqa: PLC0415

    try:
        config = load_config(environ)
    except BetterCcflareError as exc:
        raise _UnreachableError("configuration error, see `better-ccflare config show`") from exc
    return config.local_url


def _key(environ: Mapping[str, str]) -> str | None:
    for name in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"):
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def _ask(base: str, session: str, key: str | None) -> _SessionAnswer:
    url = f"{base}/api/sessions/{urllib.parse.quote(session, safe='')}/account"
    if not url.startswith(("http://", "https://")):
        raise _UnreachableError("ANTHROPIC_BASE_URL is not an http(s) URL")
    headers = {"accept": "application/json"}
    if key is not None:
        headers["x-api-key"] = key
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (checked above)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as exc:
        reason = {401: "key refused", 403: "key may not read sessions"}.get(exc.code)
        raise _UnreachableError(reason or f"server answered {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise _UnreachableError("server unreachable") from exc
    try:
        return msgspec.json.decode(body, type=_SessionAnswer)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _UnreachableError("not a better-ccflare server") from exc


@click.command()
def statusline() -> None:
    """One line for Claude Code's status bar: this session's account and its usage.

    Reads Claude Code's status JSON on stdin; put it in ~/.claude/settings.json as
    {"statusLine": {"type": "command", "command": "better-ccflare statusline"}}. Always exits 0.
    """
    click.echo(run_statusline(sys.stdin, os.environ))
