"""What the client sees on the wire: the real server, configured as ``serve`` configures it,
read byte for byte from a raw socket so no HTTP client can merge or hide repeated headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json, stream_events
from .support.service import console_account, running_proxy

UPSTREAM_HEADERS = {"date": "Tue, 01 Dec 2026 10:00:00 GMT", "server": "cloudflare"}


@asynccontextmanager
async def proxy_as_served(tmp_path: Path, upstream: FakeUpstream) -> AsyncGenerator[int]:
    """The service under uvicorn with :func:`uvicorn_config`'s settings, on a free port."""
    async with running_proxy(tmp_path, console_account("a", upstream)) as (_, url):
        yield int(url.rpartition(":")[2])


async def raw_exchange(port: int, body: bytes) -> list[tuple[str, str]]:
    """POST ``body`` to /v1/messages over a bare socket; the response's header lines."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/messages HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.read()
    writer.close()
    lines = head.decode("latin-1").split("\r\n")[1:-2]
    return [(name.lower(), value.strip()) for name, _, value in (x.partition(":") for x in lines)]


@pytest.mark.parametrize(
    "reply",
    [
        Reply.json(message_json(), headers=UPSTREAM_HEADERS),
        Reply.stream(stream_events(["Hi"]), headers=UPSTREAM_HEADERS),
    ],
    ids=["json", "stream"],
)
async def test_a_proxied_response_has_one_date_and_no_upstream_server(
    tmp_path: Path, reply: Reply
) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(reply)
        async with proxy_as_served(tmp_path, upstream) as port:
            body = b'{"model": "%s", "max_tokens": 8, "messages": []}' % MODEL.encode()
            headers = await raw_exchange(port, body)
    names = [name for name, _ in headers]
    assert names.count("date") == 1, headers
    assert "server" not in names, headers
