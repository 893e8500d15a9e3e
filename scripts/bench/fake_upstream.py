"""A fake Anthropic Messages API fast enough that it is never what a benchmark measures.

Raw HTTP/1.1 on an ``asyncio.Protocol`` (uvloop when installed), keep-alive, no framework and
no per-request allocation beyond slicing the input: every reply is built once at start-up.

``POST /v1/messages`` answers:

- a canned message as JSON (~600 B), unless the body asks for ``"stream": true``;
- a canned 20-event SSE stream (message_start, content_block_start, 15 text deltas,
  content_block_stop, message_delta, message_stop) in one chunked write;
- with ``x-bench-reply: realistic``: a Claude-Code-sized stream instead (about 150 events and
  30 KB: 100 text deltas, then a ``tool_use`` block built from 40 ``input_json_delta`` events);
- with ``x-bench-pace-ms: N``: the same events, each burst of ``x-bench-burst`` events
  (default 1) in its own chunk, N ms apart. The first burst goes with the headers, so the first
  text delta of the 20-event stream arrives N ms after them.

Replies carry ``request-id`` and ``anthropic-ratelimit-*`` headers like the real API's.
``GET /stats`` answers ``{"<x-api-key>": requests, ...}``: how many messages requests arrived
with each key, which tells the runner how many requests each proxy sent upstream.

Usage: python scripts/bench/fake_upstream.py PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from typing import cast

MODEL = "claude-sonnet-4-5-20250929"
SSE_EVENTS = 20
REALISTIC_TEXT_DELTAS = 100
REALISTIC_TOOL_DELTAS = 40

_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*true')
_MAX_HEAD = 64 * 1024

__all__ = [
    "MODEL",
    "SSE_EVENTS",
    "realistic_events",
    "sse_events",
]


def _event(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _message_start(input_tokens: int, cache_read: int) -> bytes:
    return _event(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01BenchStream",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": cache_read,
                    "output_tokens": 1,
                },
            },
        },
    )


def _text_delta(index: int, text: str) -> bytes:
    return _event(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "text_delta", "text": text},
        },
    )


def _finish(output_tokens: int, stop_reason: str) -> list[bytes]:
    return [
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        _event("message_stop", {"type": "message_stop"}),
    ]


_TEXT_BLOCK_START = _event(
    "content_block_start",
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
)


def sse_events() -> list[bytes]:
    """The short stream: 20 events, 15 of them text deltas."""
    deltas = SSE_EVENTS - 5
    events = [
        _message_start(20, 0),
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        *(_text_delta(0, f"word{i} ") for i in range(deltas)),
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        *_finish(deltas, "end_turn"),
    ]
    assert len(events) == SSE_EVENTS
    return events


def realistic_events() -> list[bytes]:
    """A Claude Code turn: some prose, then a tool call whose JSON input streams in pieces."""
    sentence = "The function reads the configuration, validates each field and returns it. "
    tool_input = json.dumps(
        {
            "file_path": "/home/user/project/src/service/configuration_loader.py",
            "old_string": "def load(path):\n    return json.loads(path.read_text())\n" * 3,
            "new_string": "def load(path: Path) -> Config:\n    return Config.parse(path)\n" * 3,
        }
    )
    step = -(-len(tool_input) // REALISTIC_TOOL_DELTAS)
    pieces = [tool_input[i : i + step] for i in range(0, len(tool_input), step)]
    return [
        _message_start(4_200, 38_000),
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        _event("ping", {"type": "ping"}),
        *(_text_delta(0, sentence[: 20 + i % 50]) for i in range(REALISTIC_TEXT_DELTAS)),
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_01BenchEdit",
                    "name": "Edit",
                    "input": {},
                },
            },
        ),
        *(
            _event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                },
            )
            for piece in pieces
        ),
        _event("content_block_stop", {"type": "content_block_stop", "index": 1}),
        *_finish(REALISTIC_TEXT_DELTAS * 12 + 180, "tool_use"),
    ]


def _message_json() -> bytes:
    text = (
        "Hello! This is a canned reply from the fake upstream used to measure how much time "
        "and CPU a proxy adds to each request. "
    )
    message = {
        "id": "msg_01BenchJson",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": text * 2}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 48,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 0,
        },
    }
    return json.dumps(message, separators=(",", ":")).encode()


_COMMON_HEADERS = (
    "request-id: req_01BenchUpstream\r\n"
    "anthropic-ratelimit-requests-limit: 4000\r\n"
    "anthropic-ratelimit-requests-remaining: 3999\r\n"
    "anthropic-ratelimit-requests-reset: 2030-01-01T00:00:00Z\r\n"
    "anthropic-ratelimit-tokens-limit: 2000000\r\n"
    "anthropic-ratelimit-tokens-remaining: 1999000\r\n"
    "anthropic-ratelimit-tokens-reset: 2030-01-01T00:00:00Z\r\n"
)
_SSE_HEAD = (
    "HTTP/1.1 200 OK\r\n"
    "content-type: text/event-stream; charset=utf-8\r\n"
    "cache-control: no-cache\r\n"
    "transfer-encoding: chunked\r\n" + _COMMON_HEADERS + "\r\n"
).encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _json_reply(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n" + _COMMON_HEADERS + "\r\n"
    )
    return head.encode() + body


def _plain(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


_JSON_REPLY = _json_reply(_message_json())
_SHORT = sse_events()
_REALISTIC = realistic_events()
_SSE_REPLY = _SSE_HEAD + _chunk(b"".join(_SHORT)) + b"0\r\n\r\n"
_REALISTIC_REPLY = _SSE_HEAD + _chunk(b"".join(_REALISTIC)) + b"0\r\n\r\n"
_NOT_FOUND = _plain("404 Not Found", b'{"type":"error","error":{"type":"not_found_error"}}')
_BAD_REQUEST = _plain("400 Bad Request", b'{"type":"error","error":{"type":"invalid_request"}}')

_COUNTS: Counter[str] = Counter()
"""Messages requests per ``x-api-key``: shared by every connection of the process."""


def _bursts(events: list[bytes], size: int) -> Iterator[bytes]:
    for start in range(0, len(events), size):
        yield _chunk(b"".join(events[start : start + size]))


class _Connection(asyncio.Protocol):
    """One keep-alive connection; requests are answered in order as they complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False
        """A paced reply is still being written; later requests wait in the buffer."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._serve()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def _serve(self) -> None:
        while not self._busy and self._transport is not None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    self._close_with(_BAD_REQUEST)
                return
            head = bytes(self._buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", ""):
                self._close_with(_BAD_REQUEST)  # clients under test send a content-length
                return
            length = int(headers.get("content-length", "0"))
            if len(self._buffer) < end + 4 + length:
                return
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            self._answer(lines[0], headers, body)
            if headers.get("connection", "").lower() == "close":
                self._transport.close()
                return

    def _close_with(self, reply: bytes) -> None:
        if self._transport is not None:
            self._transport.write(reply)
            self._transport.close()

    def _answer(self, request_line: str, headers: dict[str, str], body: bytes) -> None:
        assert self._transport is not None
        method, _, rest = request_line.partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method == "GET" and path == "/stats":
            self._transport.write(_json_reply(json.dumps(dict(_COUNTS)).encode()))
            return
        if method != "POST" or path != "/v1/messages":
            self._transport.write(_NOT_FOUND)
            return
        _COUNTS[headers.get("x-api-key", "")] += 1
        if not _STREAM_FLAG.search(body):
            self._transport.write(_JSON_REPLY)
            return
        realistic = headers.get("x-bench-reply") == "realistic"
        pace_ms = float(headers.get("x-bench-pace-ms", "0"))
        if pace_ms <= 0:
            self._transport.write(_REALISTIC_REPLY if realistic else _SSE_REPLY)
            return
        burst = max(1, int(headers.get("x-bench-burst", "1")))
        bursts = list(_bursts(_REALISTIC if realistic else _SHORT, burst))
        if len(bursts) == 1:
            self._transport.write(_SSE_HEAD + bursts[0] + b"0\r\n\r\n")
            return
        self._busy = True
        self._transport.write(_SSE_HEAD + bursts[0])
        self._pace(bursts, pace_ms / 1000)

    def _pace(self, bursts: list[bytes], interval_s: float) -> None:
        """Write ``bursts[1:]`` one per interval, timed from now so that delays do not add up."""
        loop = asyncio.get_running_loop()
        start = loop.time()

        def step(n: int) -> None:
            transport = self._transport
            if transport is None:
                return
            if n < len(bursts) - 1:
                transport.write(bursts[n])
                loop.call_at(start + (n + 1) * interval_s, step, n + 1)
                return
            transport.write(bursts[n] + b"0\r\n\r\n")
            self._busy = False
            self._serve()

        loop.call_at(start + interval_s, step, 1)


async def serve(port: int) -> None:
    """Serve on 127.0.0.1:``port`` until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    port = int(sys.argv[1])
    try:
        import uvloop  # noqa: PLC0415 (optional: plain asyncio works too, only slower)
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve(port))


if __name__ == "__main__":
    main()
