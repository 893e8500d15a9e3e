"""A response's head leaves with the first piece of its body, in one send, under the real
server; a stream whose first event is late still gets its head at once; and nothing stands
between uvicorn and the app that the proxy does not use.

The client is a raw socket: how many segments carried data to it is the kernel's count
(``TCP_INFO``'s ``tcpi_data_segs_in``, Linux), which no HTTP library shows.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from pathlib import Path

from better_ccflare.server import uvicorn_config

from .support.fake_upstream import FakeUpstream, Reply, sse
from .support.messages import MODEL, message_json
from .support.service import console_account, running_proxy

_DATA_SEGS_IN = struct.Struct("=I")
_DATA_SEGS_IN_OFFSET = 152
"""Where ``tcpi_data_segs_in`` lies in ``struct tcp_info`` (Linux 4.6 and later)."""


def _post(body: dict[str, object]) -> bytes:
    data = json.dumps(body).encode()
    return (
        b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"anthropic-version: 2023-06-01\r\nx-api-key: client-key\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(data), data)
    )


def _data_segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return _DATA_SEGS_IN.unpack_from(info, _DATA_SEGS_IN_OFFSET)[0]


def _receive_until(sock: socket.socket, end: bytes, timeout_s: float = 10.0) -> bytes:
    sock.settimeout(timeout_s)
    received = b""
    while end not in received:
        piece = sock.recv(65536)
        assert piece, f"closed early after {received!r}"
        received += piece
    return received


async def test_a_json_answer_reaches_the_client_in_one_segment(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json("one piece")))
        async with running_proxy(tmp_path, console_account("a", upstream)) as (_, url):
            host, port = url.removeprefix("http://").split(":")
            request = _post({"model": MODEL, "max_tokens": 16, "messages": []})

            def exchange() -> tuple[bytes, int]:
                with socket.create_connection((host, int(port))) as sock:
                    sock.sendall(request)
                    answer = _receive_until(sock, b"0\r\n\r\n")
                    return answer, _data_segments_in(sock)

            answer, segments = await asyncio.to_thread(exchange)

    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"one piece" in answer
    assert segments == 1  # head, body and its end together


async def test_a_streams_head_is_not_held_for_a_late_first_event(tmp_path: Path) -> None:
    late = sse("message_start", {"type": "message_start"})
    async with FakeUpstream() as upstream:
        upstream.set_default(
            Reply(headers={"content-type": "text/event-stream"}, chunks=((1.0, late),))
        )
        async with running_proxy(tmp_path, console_account("a", upstream)) as (_, url):
            host, port = url.removeprefix("http://").split(":")
            request = _post({"model": MODEL, "max_tokens": 16, "messages": [], "stream": True})

            def head_and_event_after() -> tuple[float, float]:
                with socket.create_connection((host, int(port))) as sock:
                    sent = time.monotonic()
                    sock.sendall(request)
                    _receive_until(sock, b"\r\n\r\n")
                    head_after = time.monotonic() - sent
                    _receive_until(sock, b"message_start")
                    return head_after, time.monotonic() - sent

            head_after, event_after = await asyncio.to_thread(head_and_event_after)

    assert head_after < 0.5
    assert event_after >= 0.9


async def test_the_app_is_served_without_a_forwarded_headers_layer(tmp_path: Path) -> None:
    # Nothing reads the client's address or scheme; uvicorn's X-Forwarded-* rewriting would
    # be one more call on every request.
    async with running_proxy(tmp_path) as (service, _):
        served = uvicorn_config(service.config, service.app)
        served.load()
        assert served.loaded_app is service.app  # pyright: ignore[reportUnknownMemberType] (uvicorn leaves it untyped)
