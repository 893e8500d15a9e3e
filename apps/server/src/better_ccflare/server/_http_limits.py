"""The limits every client meets before its key is checked: head size and header count, head
and body read deadlines, and a cap on open connections.

uvicorn's httptools protocol (the one it picks when httptools is installed, as it is here) has
none of them: httptools buffers a header of any size (4 x 64 MB of headers took the server
from 85 to 358 MB), a request trickling its body one byte every 2 s is never timed out, a
connection that sends nothing is kept forever, and uvicorn's ``limit_concurrency`` only answers
503 once a request's head is complete, which a slowloris client never sends. So the protocol is
subclassed here, as little as possible, and passed to uvicorn as ``http=``.

The checks cost the hot path a few attribute updates per request: bytes are counted per read,
a deadline timer exists only while a head or a body is incomplete across reads, and the exact
head size is summed only when the reads' total already exceeds the limit.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

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
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_body = False
        self._body_read_at = 0.0
        self._body_timer: asyncio.TimerHandle | None = None

    # --- the connection -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # pyright: ignore[reportIncompatibleMethodOverride]
        crowded = len(self.connections) >= self._limits.max_connections
        super().connection_made(transport)
        if crowded:
            self._refuse(503, "The server has too many open connections; try again shortly.")
            return
        # A connection that never sends a byte is closed at the head deadline too.
        self._head_timer = self.loop.call_later(self._limits.header_timeout_s, self._head_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._in_body:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._refused:
            return
        if self._in_body:
            self._body_read_at = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(
                    self._limits.body_timeout_s, self._body_deadline
                )
        elif self._head_bytes:  # a head begun and not complete
            if self._head_bytes > self._limits.max_header_bytes:
                self._refuse(431, "The request's headers are too large.")
            elif self._head_timer is None:
                self._head_timer = self.loop.call_later(
                    self._limits.header_timeout_s, self._head_deadline
                )

    # --- parser callbacks ---------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        limits = self._limits
        # The reads' total includes whatever body came with the head; only when it exceeds the
        # limit is the head itself measured.
        too_large = self._head_bytes > limits.max_header_bytes and (
            len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            > limits.max_header_bytes
        )
        self._head_bytes = 0
        if too_large or len(self.headers) > limits.max_headers:
            self._refuse(431, "The request has too many or too large headers.")
            return
        self._in_body = True
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # --- deadlines and refusals ---------------------------------------------------------------

    def _head_deadline(self) -> None:
        self._head_timer = None
        if self._in_body or self._refused:
            return
        if self.flow.read_paused or _answering(self._cycle()):
            # Reading is held back by the server (an earlier pipelined request is still being
            # answered), not by the client: wait again.
            self._head_timer = self.loop.call_later(
                self._limits.header_timeout_s, self._head_deadline
            )
            return
        if self._head_bytes:
            self._refuse(408, "The request's headers took too long to arrive.")
        else:
            self._refused = True
            self.transport.close()

    def _body_deadline(self) -> None:
        self._body_timer = None
        if not self._in_body or self._refused:
            return
        now = self.loop.time()
        cycle = self._cycle()
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            self._body_read_at = now  # the server is not reading yet; the client is not late
        remaining = self._limits.body_timeout_s - (now - self._body_read_at)
        if remaining > 0:
            self._body_timer = self.loop.call_later(remaining, self._body_deadline)
            return
        self._refuse(408, "The request body stopped arriving.")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` (unless a response is already under way) and close."""
        self._refused = True
        self._stop_timers()
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
        self.transport.close()

    def _cycle(self) -> RequestResponseCycle | None:
        """The current request's cycle: uvicorn types it as always set, but it starts as None."""
        return self.cycle

    def _stop_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None


def _answering(cycle: RequestResponseCycle | None) -> bool:
    return cycle is not None and not cycle.response_complete
