"""The limits every client meets before its key is checked: head size and header count, head
and body read deadlines, and a cap on open connections.

uvicorn's httptools protocol (the one it picks when httptools is installed, as it is here) has
none of them: httptools buffers a header of any size (4 x 64 MB of headers took the server
from 85 to 358 MB), a request trickling its body one byte every 2 s is never timed out, a
connection that sends nothing is kept forever, and uvicorn's ``limit_concurrency`` only answers
503 once a request's head is complete, which a slowloris client never sends. So the protocol is
subclassed here, as little as possible, and passed to uvicorn as ``http=``. It also gives each
request's cycle a transport that sends a response's head with its body (``_response_head``).

The checks cost the hot path a few attribute updates per request: bytes are counted per read,
one watchdog timer per connection serves both deadlines (armed only while a head or a body is
incomplete across reads, and not re-created per request), and the exact head size is summed
only when the reads' total already exceeds the limit.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ._response_head import HeadWithBody

__all__ = ["HttpLimits", "limited_http_protocol"]


class HttpLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The limits, in the units uvicorn's protocol works in."""

    max_connections: int = 1000
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0


_REASONS = {
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
_KINDS = {408: "timeout_error", 431: "invalid_request_error", 503: "overloaded_error"}


def limited_http_protocol(limits: HttpLimits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol held to ``limits``; pass it to ``uvicorn.Config(http=)``."""

    class Configured(_LimitedHttpToolsProtocol):
        _limits = limits

    return Configured


class _LimitedHttpToolsProtocol(HttpToolsProtocol):
    _limits: ClassVar[HttpLimits]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # pyright: ignore[reportArgumentType]
        self._refused = False
        self._head_bytes = 0
        """Bytes read since the last head was complete (while no body is being read)."""
        self._head_started_at: float | None = None
        """When the head being awaited began (its first byte, or the connection); None when
        no head is awaited."""
        self._in_body = False
        self._body_read_at = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        """One timer per connection checks both deadlines. It is not cancelled when a head or
        body completes, only left to find nothing due, so a busy keep-alive connection costs a
        timer per deadline period instead of one per request."""
        self._watch_at = 0.0
        """When the watchdog fires; a nearer deadline re-arms it."""

    # --- the connection -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # pyright: ignore[reportIncompatibleMethodOverride]
        crowded = len(self.connections) >= self._limits.max_connections
        super().connection_made(transport)
        if crowded:
            self._refuse(503, "The server has too many open connections; try again shortly.")
            return
        # A connection that never sends a byte is closed at the head deadline too.
        self._head_started_at = self.loop.time()
        self._watch_until(self._head_started_at + self._limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watching()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._in_body:
            self._head_bytes += len(data)
            if self._head_started_at is None:
                self._head_started_at = self.loop.time()
        super().data_received(data)
        if self._refused:
            return
        if self._in_body:
            self._body_read_at = self.loop.time()
            due = self._body_read_at + self._limits.body_timeout_s
        elif self._head_started_at is None:
            return  # nothing awaited: the request is whole
        elif self._head_bytes > self._limits.max_header_bytes:
            self._refuse(431, "The request's headers are too large.")
            return
        else:
            due = self._head_started_at + self._limits.header_timeout_s
        if self._watchdog is None or due < self._watch_at:
            self._watch_until(due)

    # --- parser callbacks ---------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        limits = self._limits
        # The reads' total includes whatever body came with the head; only when it exceeds the
        # limit is the head itself measured.
        too_large = self._head_bytes > limits.max_header_bytes and (
            len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            > limits.max_header_bytes
        )
        self._head_bytes = 0
        self._head_started_at = None
        if too_large or len(self.headers) > limits.max_headers:
            self._refuse(431, "The request has too many or too large headers.")
            return
        self._in_body = True
        super().on_headers_complete()
        cycle = self._cycle()
        if cycle is not None and cycle.transport is self.transport:  # the new request's cycle
            # The cycle uses only write, close and is_closing, which the stand-in has.
            cycle.transport = HeadWithBody(self.transport)  # pyright: ignore[reportAttributeAccessIssue]

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            self._in_body = False
            super().on_message_complete()

    # --- deadlines and refusals ---------------------------------------------------------------

    def _watch(self) -> None:
        """Refuse the client whose head or body is overdue; otherwise look again when the
        next one could be."""
        self._watchdog = None
        if self._refused:
            return
        now = self.loop.time()
        cycle = self._cycle()
        # A deadline counts only the time the server was waiting for the client: not while it
        # held reading back (flow control, an earlier request still being answered) nor before
        # it asked for a body the client announced with ``Expect: 100-continue``.
        if self._in_body:
            if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
                self._body_read_at = now
            due = self._body_read_at + self._limits.body_timeout_s
            overdue = (408, "The request body stopped arriving.")
        elif self._head_started_at is not None:
            if self.flow.read_paused or (cycle is not None and not cycle.response_complete):
                self._head_started_at = now
            due = self._head_started_at + self._limits.header_timeout_s
            overdue = (408, "The request's headers took too long to arrive.")
        else:
            return  # between requests: uvicorn's keep-alive timeout governs
        if now < due:
            self._watch_until(due)
        elif self._in_body or self._head_bytes:
            self._refuse(*overdue)
        else:  # connected and never sent a byte: nothing to answer
            self._refused = True
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` (unless a response is already under way) and close."""
        self._refused = True
        self._stop_watching()
        cycle = self._cycle()
        if cycle is None or cycle.response_complete or not cycle.response_started:
            body = msgspec.json.encode(
                {"type": "error", "error": {"type": _KINDS[status], "message": message}}
            )
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, _REASONS[status], len(body), body)
            )
        if cycle is not None and not cycle.response_complete:
            # The application is cut off now: its reads see a disconnect, its writes are dropped.
            cycle.disconnected = True
            cycle.message_event.set()
            if isinstance(cycle.transport, HeadWithBody):
                cycle.transport.flush()  # a head still held goes out before the close
        self.transport.close()

    def _cycle(self) -> RequestResponseCycle | None:
        """The current request's cycle: uvicorn types it as always set, but it starts as None."""
        return self.cycle

    def _watch_until(self, due: float) -> None:
        self._stop_watching()
        self._watch_at = due
        self._watchdog = self.loop.call_at(due, self._watch)

    def _stop_watching(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
