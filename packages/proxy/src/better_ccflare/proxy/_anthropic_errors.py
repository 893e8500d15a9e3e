"""Errors in Anthropic's shape, the way the SDKs and Claude Code read them: a JSON body
(``{"type":"error","error":{"type":…,"message":…}}``) and the ``event: error`` that ends a
stream."""

from __future__ import annotations

import msgspec

__all__ = ["ErrorReply", "error_body", "error_event", "error_event_of"]


class ErrorReply(msgspec.Struct, frozen=True, kw_only=True):
    """A whole error answer the proxy writes itself."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class _Detail(msgspec.Struct, frozen=True):
    type: str
    message: str


class _Error(msgspec.Struct, frozen=True, tag_field="type", tag="error"):
    error: _Detail


def error_body(kind: str, message: str) -> bytes:
    """``{"type":"error","error":{"type":kind,"message":message}}``."""
    return msgspec.json.encode(_Error(_Detail(kind, message)))


def error_event(kind: str, message: str) -> bytes:
    """A server-sent ``error`` event, to end a stream that cannot be completed.

    It starts with a line break: when the stream was cut in the middle of a line, that ends the
    line, and this event's own ``event:`` line then makes the event being received an error
    (the SDKs raise on it whatever its data holds); after a complete event it is an empty line,
    which a client ignores.
    """
    return error_event_of(error_body(kind, message))


def error_event_of(body: bytes) -> bytes:
    """The ``event: error`` (see :func:`error_event`) carrying ``body``, an Anthropic error body
    as JSON, re-encoded on one line as an event's data must be."""
    return b"\nevent: error\ndata: " + msgspec.json.encode(msgspec.json.decode(body)) + b"\n\n"
