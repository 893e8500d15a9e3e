"""A scriptable fake upstream: a real HTTP/1.1 server on 127.0.0.1.

Tests script what each request gets (status, headers, a JSON body or a paced stream of chunks,
a stall before the headers, a connection that dies mid-stream) and afterwards read what the
server saw: every request's method, path, headers and body, and whether and when the peer
hung up. It is deliberately written on raw asyncio streams so that nothing about it depends on
the HTTP stack under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Disconnect", "FakeUpstream", "RecordedRequest", "Reply", "sse"]


@dataclass(frozen=True, slots=True)
class Reply:
    """What one request receives.

    ``chunks`` are sent with chunked transfer-encoding, each after its own delay in seconds;
    without chunks, ``body`` is sent with a content-length. ``die_after`` closes the socket
    abruptly after that many chunks (a dead upstream mid-stream).
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict[str, str])
    body: bytes = b""
    chunks: tuple[tuple[float, bytes], ...] = ()
    headers_delay_s: float = 0.0
    die_after: int | None = None

    @staticmethod
    def json(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return Reply(
            status=status,
            headers={"content-type": "application/json", **(headers or {})},
            body=json.dumps(payload).encode(),
        )

    @staticmethod
    def stream(
        events: list[bytes], *, spacing_s: float = 0.0, headers: dict[str, str] | None = None
    ) -> Reply:
        return Reply(
            headers={"content-type": "text/event-stream", **(headers or {})},
            chunks=tuple((spacing_s if i else 0.0, e) for i, e in enumerate(events)),
        )


def sse(event: str, data: object) -> bytes:
    """One server-sent event, encoded as Anthropic sends it."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    def json(self) -> Any:
        """The body decoded as JSON (``Any``: tests index into it freely)."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The peer went away while request ``index`` was being answered."""

    index: int
    chunks_sent: int
    at: float


Handler = Callable[[RecordedRequest], Reply]


class FakeUpstream:
    """Run with ``async with FakeUpstream() as upstream:``; its URL is ``upstream.url``."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[Disconnect] = []
        self.connections = 0
        """TCP connections accepted so far (a pooling client reuses one)."""
        self._queue: deque[Reply | Handler] = deque()
        self._default: Reply | Handler = Reply.json({"ok": True})
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    def enqueue(self, *replies: Reply | Handler) -> None:
        """Answer the next requests with these, in order; then fall back to the default."""
        self._queue.extend(replies)

    def set_default(self, reply: Reply | Handler) -> None:
        self._default = reply

    async def __aenter__(self) -> FakeUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while await self._one_exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
        if not head:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        body = await self._read_body(reader, headers)
        path, _, query = target.partition("?")
        request = RecordedRequest(method, path, query, headers, body, time.monotonic())
        index = len(self.requests)
        self.requests.append(request)
        planned = self._queue.popleft() if self._queue else self._default
        reply = planned(request) if callable(planned) else planned
        return await self._answer(index, reply, writer, reader)

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    return b"".join(parts)
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
        return await reader.readexactly(int(headers.get("content-length", "0")))

    async def _answer(
        self, index: int, reply: Reply, writer: asyncio.StreamWriter, reader: asyncio.StreamReader
    ) -> bool:
        if reply.headers_delay_s and await _peer_gone_within(reader, reply.headers_delay_s):
            self.disconnects.append(Disconnect(index, 0, time.monotonic()))
            return False
        streamed = bool(reply.chunks)
        head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        head.append(
            "transfer-encoding: chunked" if streamed else f"content-length: {len(reply.body)}"
        )
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if not streamed:
            writer.write(reply.body)
            await writer.drain()
            return True
        sent = 0
        try:
            for delay, chunk in reply.chunks:
                if reply.die_after is not None and sent >= reply.die_after:
                    writer.transport.abort()
                    return False
                if delay and await _peer_gone_within(reader, delay):
                    raise ConnectionResetError
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
                sent += 1
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            self.disconnects.append(Disconnect(index, sent, time.monotonic()))
            return False
        return True


async def _peer_gone_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Wait ``seconds``; True if the peer closed its side meanwhile."""
    try:
        data = await asyncio.wait_for(reader.read(1), timeout=seconds)
    except TimeoutError:
        return False
    return data == b""


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    529: "Overloaded",
}
