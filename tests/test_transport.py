"""The httpx2 upstream transport against a real server: streaming, deadlines, failures."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from better_ccflare.providers import UpstreamRequest
from better_ccflare.proxy._transport import (
    Httpx2Transport,
    Timeouts,
    UpstreamConnectError,
    UpstreamTimeoutError,
)

from .support.fake_upstream import FakeUpstream, Reply, sse


def request(url: str, body: bytes = b"{}") -> UpstreamRequest:
    return UpstreamRequest(
        method="POST", url=url, headers={"content-type": "application/json"}, body=body
    )


async def test_streams_chunks_as_they_arrive_and_records_headers() -> None:
    events = [sse("ping", {"type": "ping", "n": i}) for i in range(3)]
    transport = Httpx2Transport()
    async with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream(events, spacing_s=0.05, headers={"x-one": "a"}))
        response = await transport.send(request(f"{upstream.url}/v1/messages"), Timeouts())
        assert response.status == 200
        assert response.header("x-one") == "a"
        arrivals: list[float] = []
        body = b""
        async for chunk in response.aiter_raw():
            arrivals.append(time.monotonic())
            body += chunk
        await response.aclose()
        assert body == b"".join(events)
        assert arrivals[-1] - arrivals[0] >= 0.09
        assert upstream.requests[0].body == b"{}"
    await transport.aclose()


async def test_first_byte_deadline() -> None:
    transport = Httpx2Transport()
    async with FakeUpstream() as upstream:
        upstream.enqueue(Reply(headers_delay_s=2.0))
        with pytest.raises(UpstreamTimeoutError) as info:
            await transport.send(request(upstream.url), Timeouts(first_byte_s=0.1))
        assert info.value.phase == "first_byte"
    await transport.aclose()


async def test_idle_deadline_between_chunks() -> None:
    transport = Httpx2Transport()
    async with FakeUpstream() as upstream:
        upstream.enqueue(
            Reply(
                headers={"content-type": "text/event-stream"},
                chunks=((0.0, b"data: 1\n\n"), (1.0, b"data: 2\n\n")),
            )
        )
        response = await transport.send(request(upstream.url), Timeouts(idle_s=0.1))
        seen: list[bytes] = []

        async def drain() -> None:
            async for chunk in response.aiter_raw():
                seen.append(chunk)

        with pytest.raises(UpstreamTimeoutError) as info:
            await drain()
        await response.aclose()
        assert info.value.phase == "idle"
        assert seen == [b"data: 1\n\n"]
    await transport.aclose()


async def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = Httpx2Transport()
    with pytest.raises(UpstreamConnectError):
        await transport.send(request(f"http://127.0.0.1:{port}/"), Timeouts(connect_s=1.0))
    await transport.aclose()


async def test_upstream_dying_mid_body_is_a_connect_error() -> None:
    transport = Httpx2Transport()
    async with FakeUpstream() as upstream:
        upstream.enqueue(
            Reply(
                headers={"content-type": "text/event-stream"},
                chunks=((0.0, b"data: 1\n\n"), (0.0, b"data: 2\n\n")),
                die_after=1,
            )
        )
        response = await transport.send(request(upstream.url), Timeouts())
        with pytest.raises(UpstreamConnectError):
            await response.aread()
        await response.aclose()
    await transport.aclose()


async def test_cancelling_during_headers_closes_the_upstream_connection() -> None:
    transport = Httpx2Transport()
    async with FakeUpstream() as upstream:
        upstream.enqueue(Reply(headers_delay_s=5.0))
        task = asyncio.create_task(transport.send(request(upstream.url), Timeouts()))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if upstream.disconnects:
                break
            await asyncio.sleep(0.01)
        assert [d.chunks_sent for d in upstream.disconnects] == [0]
    await transport.aclose()
