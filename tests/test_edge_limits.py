"""The limits every client meets before its key is checked, under the real server.

Raw sockets play the misbehaving clients (httpx2 would not send a 4 MB header or trickle a
body); the service runs under uvicorn exactly as ``serve`` configures it, with the limits made
small through their settings so the tests stay quick.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import message_json
from .support.service import console_account, running_proxy

REQUEST = b"GET /api/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@asynccontextmanager
async def connection(url: str) -> AsyncGenerator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def response_to(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """What the server wrote before closing (or the first 64 KiB of it); b"" for a reset."""
    try:
        return await asyncio.wait_for(reader.read(65536), timeout=10)
    except ConnectionResetError:
        return b""


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(REQUEST)
    await writer.drain()
    return await response_to(reader, writer)


async def trickle(
    writer: asyncio.StreamWriter, piece: bytes, every_s: float, answered: asyncio.Task[bytes]
) -> None:
    """Send ``piece`` every ``every_s`` seconds (at most 50 times) until the server answers."""
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        for _ in range(50):
            await asyncio.wait({answered}, timeout=every_s)
            if answered.done():
                return
            writer.write(piece)
            await writer.drain()


def rss_mib() -> float:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def send_huge_head(url: str, header_bytes: int) -> bytes:
    async with connection(url) as (reader, writer):
        try:
            writer.write(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            chunk = b"a" * 65536
            for _ in range(header_bytes // len(chunk)):
                writer.write(chunk)
                await writer.drain()
            writer.write(b"\r\n\r\n")
            await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the server may close before the client has finished sending
        return await response_to(reader, writer)


async def test_four_megabytes_of_headers_get_431_without_growing_the_server(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as upstream, running_proxy(tmp_path) as (_, url):
        before = rss_mib()
        answers = await asyncio.gather(*(send_huge_head(url, 4 * 1024 * 1024) for _ in range(8)))
        grown = rss_mib() - before
        # The server answers 431 and closes while the client is still sending, so the client's
        # kernel usually gets a reset, which discards the answer: either outcome is a refusal.
        assert all(a.startswith(b"HTTP/1.1 431 ") or a == b"" for a in answers), answers
        assert grown < 16, f"RSS grew by {grown:.1f} MiB for 8 x 4 MiB of headers"
        assert upstream.requests == []


async def test_too_many_headers_get_431(tmp_path: Path) -> None:
    async with (
        running_proxy(tmp_path, BETTER_CCFLARE_MAX_HEADERS="20") as (_, url),
        connection(url) as (reader, writer),
    ):
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(21))
        writer.write(b"GET /api/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n")
        assert (await response_to(reader, writer)).startswith(b"HTTP/1.1 431 ")


async def test_a_head_within_the_limits_is_served(tmp_path: Path) -> None:
    async with (
        running_proxy(tmp_path, BETTER_CCFLARE_MAX_HEADERS="20") as (_, url),
        connection(url) as (reader, writer),
    ):
        some = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(18))
        writer.write(b"GET /api/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\n" + some + b"\r\n")
        assert (await response_to(reader, writer)).startswith(b"HTTP/1.1 200 ")


async def test_a_client_trickling_its_headers_is_cut_off_at_the_header_timeout(
    tmp_path: Path,
) -> None:
    async with (
        running_proxy(tmp_path, BETTER_CCFLARE_HEADER_TIMEOUT_MS="500") as (_, url),
        connection(url) as (reader, writer),
    ):
        started = time.monotonic()
        writer.write(b"GET /api/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        answered = asyncio.create_task(response_to(reader, writer))
        await trickle(writer, b"x", 0.1, answered)
        answer = await answered
        elapsed = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert 0.4 < elapsed < 2.5


async def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(
    tmp_path: Path,
) -> None:
    async with (
        running_proxy(tmp_path, BETTER_CCFLARE_HEADER_TIMEOUT_MS="300") as (_, url),
        connection(url) as (reader, writer),
    ):
        started = time.monotonic()
        assert await response_to(reader, writer) == b""
        assert time.monotonic() - started < 2.5


async def test_a_body_trickling_a_byte_every_two_seconds_is_cut_and_not_forwarded(
    tmp_path: Path,
) -> None:
    async with (
        FakeUpstream() as upstream,
        running_proxy(
            tmp_path, console_account("a", upstream), BETTER_CCFLARE_BODY_TIMEOUT_MS="1000"
        ) as (service, url),
        connection(url) as (reader, writer),
    ):
        upstream.set_default(Reply.json(message_json()))
        writer.write(
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"content-type: application/json\r\ncontent-length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        answered = asyncio.create_task(response_to(reader, writer))
        await trickle(writer, b" ", 2, answered)
        answer = await answered
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert time.monotonic() - started < 4
        await asyncio.sleep(0.5)  # time enough for a forwarded request to reach the upstream
        await service.store.flush()
        assert upstream.requests == []


async def test_a_body_that_keeps_arriving_is_not_cut(tmp_path: Path) -> None:
    async with (
        FakeUpstream() as upstream,
        running_proxy(
            tmp_path, console_account("a", upstream), BETTER_CCFLARE_BODY_TIMEOUT_MS="500"
        ) as (_, url),
        connection(url) as (reader, writer),
    ):
        upstream.set_default(Reply.json(message_json()))
        body = b'{"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []}'
        writer.write(
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body)
        )
        for i in range(0, len(body), 8):  # 1.6 s in all, 200 ms between pieces
            writer.write(body[i : i + 8])
            await writer.drain()
            await asyncio.sleep(0.2)
        assert (await response_to(reader, writer)).startswith(b"HTTP/1.1 200 ")
        assert len(upstream.requests) == 1


async def test_connections_beyond_the_cap_are_refused_while_the_others_work(
    tmp_path: Path,
) -> None:
    async with running_proxy(tmp_path, BETTER_CCFLARE_MAX_CONNECTIONS="3") as (_, url):
        async with contextlib.AsyncExitStack() as stack:
            held = [await stack.enter_async_context(connection(url)) for _ in range(3)]
            for reader, writer in held:
                assert (await exchange(reader, writer)).startswith(b"HTTP/1.1 200 ")
            async with connection(url) as (reader, writer):
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    writer.write(REQUEST)
                    await writer.drain()
                refused = await response_to(reader, writer)
                assert refused.startswith(b"HTTP/1.1 503 ") or refused == b"", refused
            for reader, writer in held:
                assert (await exchange(reader, writer)).startswith(b"HTTP/1.1 200 ")
        # Once they are closed, new connections are served again.
        async with connection(url) as (reader, writer):
            assert (await exchange(reader, writer)).startswith(b"HTTP/1.1 200 ")
