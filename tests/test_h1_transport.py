"""What only the hand-framed HTTP/1.1 transport must get right, against a raw-bytes server.

The contract every transport shares is proven in ``test_transport.py``; these tests cover the
framing and connection handling that aiohttp and httpx2 do for themselves: arbitrary TCP
segmentation of chunked and fixed-length bodies, bodies delimited by the close, interim 1xx
answers, HEAD, reused connections the upstream closed while idle, header injection, and
flow control towards a slow reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from better_ccflare.providers import UpstreamRequest
from better_ccflare.proxy import (
    AiohttpTransport,
    H1Transport,
    Timeouts,
    UpstreamConnectError,
    UpstreamResponse,
)

from .support.tls import self_signed

Script = Callable[[int], list[bytes]]
"""Request number (from 0 on each connection) -> the segments to write back."""


@dataclass
class RawServer:
    """Answers each request with scripted raw bytes, segment by segment; records the heads."""

    script: Script
    close_after: int | None = None
    """Close each connection after answering this many requests."""
    hang_up_after: int | None = None
    """After answering this many requests on a connection, read the next one and close
    without a word: what a reused connection looks like when the upstream closed it."""
    heads: list[bytes] = field(default_factory=list[bytes])
    connections: int = 0
    port: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list[asyncio.StreamWriter])

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        served = 0
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while self.close_after is None or served < self.close_after:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                if served == self.hang_up_after:
                    break
                for segment in self.script(served):
                    writer.write(segment)
                    await writer.drain()
                    await asyncio.sleep(0)
                served += 1
        writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def raw_server(
    script: Script,
    *,
    close_after: int | None = None,
    hang_up_after: int | None = None,
    tls: ssl.SSLContext | None = None,
) -> AsyncGenerator[RawServer]:
    server = RawServer(script, close_after, hang_up_after)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for writer in server.writers:
            writer.close()
        await asyncio.sleep(0)  # let the closes reach the sockets


@contextlib.asynccontextmanager
async def h1() -> AsyncGenerator[H1Transport]:
    transport = H1Transport(proxied=AiohttpTransport())
    try:
        yield transport
    finally:
        await transport.aclose()


def post(
    url: str, *, method: str = "POST", headers: dict[str, str] | None = None
) -> UpstreamRequest:
    return UpstreamRequest(
        method=method, url=f"{url}/v1/messages", headers=headers or {}, body=b"{}"
    )


async def body_of(response: UpstreamResponse) -> bytes:
    try:
        return await response.aread()
    finally:
        await response.aclose()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def chunked(parts: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.binary(min_size=1, max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
    use_chunked=st.booleans(),
)
def test_any_body_in_any_segmentation_arrives_byte_for_byte(
    parts: list[bytes], cuts: list[int], use_chunked: bool
) -> None:
    body = b"".join(parts)
    if use_chunked:
        wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunked(parts)
    else:
        wire = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body

    async def scenario() -> None:
        async with raw_server(lambda _: split(wire, cuts)) as server, h1() as transport:
            for _ in range(2):  # the second request reuses the connection
                response = await transport.send(post(server.url), Timeouts())
                assert response.status == 200
                assert await body_of(response) == body
            assert server.connections == 1

    asyncio.run(scenario())


async def test_a_body_delimited_by_the_close_is_complete_when_the_upstream_closes() -> None:
    wire = [b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n", b"part one, ", b"part two"]
    async with raw_server(lambda _: wire, close_after=1) as server, h1() as transport:
        response = await transport.send(post(server.url), Timeouts())
        assert await body_of(response) == b"part one, part two"


async def test_a_body_cut_short_is_an_error_not_a_shorter_body() -> None:
    wire = [b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n", b"only this"]
    async with raw_server(lambda _: wire, close_after=1) as server, h1() as transport:
        response = await transport.send(post(server.url), Timeouts())
        with pytest.raises(UpstreamConnectError):
            await body_of(response)


async def test_interim_answers_are_skipped() -> None:
    wire = [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n",
        b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nx-real: 1\r\n\r\nok",
    ]
    async with raw_server(lambda _: wire) as server, h1() as transport:
        response = await transport.send(post(server.url), Timeouts())
        assert response.status == 201
        assert response.headers == [("content-length", "2"), ("x-real", "1")]
        assert await body_of(response) == b"ok"


async def test_head_answers_end_at_their_headers() -> None:
    wire = [b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n"]
    async with raw_server(lambda _: wire) as server, h1() as transport:
        for _ in range(2):
            response = await transport.send(post(server.url, method="HEAD"), Timeouts(idle_s=1))
            assert response.header("content-length") == "5000"
            assert await body_of(response) == b""
        assert server.heads[0].startswith(b"HEAD /v1/messages HTTP/1.1\r\n")


_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@pytest.mark.parametrize(
    ("wire", "hang_up_after", "heads"),
    [
        # Each connection answers one request, then hangs up on the next without a byte: the
        # upstream closed it while it sat in the pool, so that request goes out again.
        (_OK, 1, 5),
        # The upstream says it will close: the connection is never reused.
        (_OK.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n"), None, 3),
    ],
    ids=["closed-while-idle", "connection-close"],
)
async def test_connections_the_upstream_closes_are_not_reused(
    wire: bytes, hang_up_after: int | None, heads: int
) -> None:
    close_after = None if hang_up_after else 1
    async with (
        raw_server(
            lambda _: [wire], close_after=close_after, hang_up_after=hang_up_after
        ) as server,
        h1() as transport,
    ):
        for _ in range(3):
            response = await transport.send(post(server.url), Timeouts())
            assert await body_of(response) == b"ok"
        assert server.connections == 3
        assert len(server.heads) == heads


async def test_a_new_connection_that_hangs_up_is_not_retried() -> None:
    async with raw_server(lambda _: [], hang_up_after=0) as server, h1() as transport:
        with pytest.raises(UpstreamConnectError, match="closed the connection"):
            await transport.send(post(server.url), Timeouts(first_byte_s=5.0))
        assert server.connections == 1


async def test_garbage_is_a_connect_error() -> None:
    async with raw_server(lambda _: [b"SMTP ready\r\n\r\n"]) as server, h1() as transport:
        with pytest.raises(UpstreamConnectError, match="invalid HTTP response"):
            await transport.send(post(server.url), Timeouts())


@pytest.mark.parametrize("value", ["key\r\nx-injected: 1", "key\nx", "key\rx"])
async def test_a_header_with_a_line_break_is_never_sent(value: str) -> None:
    async with raw_server(lambda _: []) as server, h1() as transport:
        with pytest.raises(UpstreamConnectError, match="line break"):
            await transport.send(post(server.url, headers={"x-api-key": value}), Timeouts())
        assert server.heads == []


async def test_unsupported_urls_are_connect_errors() -> None:
    async with h1() as transport:
        for url in ("ftp://example.invalid", "http://", "http://[::1"):
            request = UpstreamRequest(method="GET", url=url, headers={}, body=b"")
            with pytest.raises(UpstreamConnectError):
                await transport.send(request, Timeouts())


async def test_request_head_names_the_host_with_its_port_and_the_query() -> None:
    wire = [b"HTTP/1.1 204 No Content\r\n\r\n"]
    async with raw_server(lambda _: wire) as server, h1() as transport:
        request = UpstreamRequest(
            method="GET", url=f"{server.url}/v1/models?limit=5", headers={"x-a": "b"}, body=b""
        )
        await body_of(await transport.send(request, Timeouts()))
        assert server.heads == [
            f"GET /v1/models?limit=5 HTTP/1.1\r\nhost: 127.0.0.1:{server.port}\r\n"
            "x-a: b\r\n\r\n".encode()
        ]


async def test_a_slow_reader_pauses_the_upstream_instead_of_buffering_everything() -> None:
    block = b"x" * 65536
    total = 64  # 4 MiB, well over the 1 MiB the transport buffers before it stops reading

    def script(_: int) -> list[bytes]:
        head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (len(block) * total)
        return [head, *([block] * total)]

    async with raw_server(script) as server, h1() as transport:
        response = await transport.send(post(server.url), Timeouts())
        await asyncio.sleep(0.3)  # a client that does not read for a while
        chunks = response.aiter_raw()
        first = await anext(chunks)
        assert len(first) <= 2 * 1024 * 1024  # what waited was bounded, not the whole body
        rest = b"".join([chunk async for chunk in chunks])
        await response.aclose()
        assert len(first) + len(rest) == len(block) * total


async def test_a_connection_paused_for_a_slow_reader_is_reusable_once_its_body_is_read() -> None:
    body = b"y" * (1024 * 1024 + 1)  # the read that ends it also crosses the pause threshold
    wire = [b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body), body]
    async with raw_server(lambda _: wire) as server, h1() as transport:
        for _ in range(2):
            response = await transport.send(post(server.url), Timeouts(first_byte_s=5.0))
            await asyncio.sleep(0.2)
            assert await body_of(response) == body
        assert server.connections == 1


@contextlib.asynccontextmanager
async def tls_server(tmp_path: Path) -> AsyncGenerator[tuple[RawServer, Path]]:
    """A raw server speaking HTTPS with a self-signed certificate for 127.0.0.1."""
    key, cert = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    wire = [b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret"]
    async with raw_server(lambda _: wire, tls=context) as server:
        yield server, cert


async def test_https_with_a_certificate_from_ssl_cert_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tls_server(tmp_path) as (server, cert):
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        async with h1() as transport:
            url = server.url.replace("http://", "https://")
            response = await transport.send(post(url), Timeouts())
            assert await body_of(response) == b"secret"


async def test_https_refuses_a_certificate_nobody_vouches_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    async with tls_server(tmp_path) as (server, _), h1() as transport:
        url = server.url.replace("http://", "https://")
        with pytest.raises(UpstreamConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await transport.send(post(url), Timeouts())
        assert server.heads == []


async def test_a_missing_ssl_cert_file_is_a_connect_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    async with tls_server(tmp_path) as (server, _), h1() as transport:
        with pytest.raises(UpstreamConnectError):
            await transport.send(post(server.url.replace("http://", "https://")), Timeouts())
