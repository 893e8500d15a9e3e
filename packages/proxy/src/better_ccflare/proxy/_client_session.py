"""Which client session a request belongs to: Claude Code's session id, whatever the format.

Claude Code puts its session id in every request's ``metadata.user_id``: before version 2.1.78
as the tail of ``user_<hash>_account_<uuid>_session_<uuid>``, since then as a JSON string
``{"device_id": ..., "account_uuid": ..., "session_id": ...}``. It also sends the id alone as
``x-claude-code-session-id``, and hands the same id to its status-line command. The proxy keys a
session by that id (request history, session affinity), so a status line can find its session
with nothing but what Claude Code tells it. A ``user_id`` of another client is kept whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["SESSION_HEADER", "claude_session_id", "client_session_id"]

SESSION_HEADER = "x-claude-code-session-id"
_SESSION_MARK = "_session_"


class _UserId(msgspec.Struct):
    session_id: str | None = None


_user_id = msgspec.json.Decoder(_UserId)


def claude_session_id(user_id: str) -> str | None:
    """The session id Claude Code embeds in ``metadata.user_id`` (either format); ``None`` when
    ``user_id`` embeds none."""
    if user_id.startswith("{"):
        try:
            return _user_id.decode(user_id).session_id or None
        except (msgspec.DecodeError, UnicodeEncodeError):
            return None
    _, mark, tail = user_id.rpartition(_SESSION_MARK)
    return tail if mark and tail else None


def client_session_id(metadata: Mapping[str, Any] | None, headers: Mapping[str, str]) -> str | None:
    """A request's session: Claude Code's session id from ``metadata.user_id``, else the
    ``user_id`` itself, else the session header."""
    user_id = metadata.get("user_id") if metadata else None
    if isinstance(user_id, str) and user_id:
        return claude_session_id(user_id) or user_id
    return headers.get(SESSION_HEADER)
