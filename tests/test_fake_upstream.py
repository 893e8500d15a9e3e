"""The fake upstream itself: it must do exactly what tests script, or proxy tests mean nothing."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx2

from .support.fake_upstream import FakeUpstream, Reply, sse


async def test_json_reply_and_request_recording() -> None:
    async with FakeUpstream() as upstream, httpx2.AsyncClient() as client:
        upstream.enqueue(Reply.json({"id": "msg_1"}, status=201, headers={"x-a": "1"}))
        response = await client.post(
            f"{upstream.url}/v1/messages?beta=true", json={"model": "m"}, headers={"x-api-key": "k"}
        )
        assert response.status_code == 201
        assert response.json() == {"id": "msg_1"}
        assert response.headers["x-a"] == "1"
        seen = upstream.requests[0]
        assert (seen.method, seen.path, seen.query) == ("POST", "/v1/messages", "beta=true")
        assert seen.headers["x-api-key"] == "k"
        assert seen.json() == {"model": "m"}


async def test_default_reply_after_queue_is_empty() -> None:
    async with FakeUpstream() as upstream, httpx2.AsyncClient() as client:
        upstream.enqueue(Reply(status=429))
        first = await client.get(f"{upstream.url}/a")
        second = await client.get(f"{upstream.url}/a")
        assert (first.status_code, second.status_code) == (429, 200)


async def test_stream_chunks_arrive_with_their_spacing() -> None:
    events = [sse("ping", {"type": "ping"}) for _ in range(4)]
    async with FakeUpstream() as upstream, httpx2.AsyncClient() as client:
        upstream.enqueue(Reply.stream(events, spacing_s=0.05))
        arrivals: list[float] = []
        received = b""
        async with client.stream("POST", f"{upstream.url}/v1/messages") as response:
            async for chunk in response.aiter_raw():
                arrivals.append(time.monotonic())
                received += chunk
        assert received == b"".join(events)
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert len(arrivals) == 4
        assert all(gap >= 0.035 for gap in gaps)


async def test_client_disconnect_mid_stream_is_recorded() -> None:
    events = [sse("ping", {"type": "ping"}) for _ in range(50)]
    async with FakeUpstream() as upstream, httpx2.AsyncClient() as client:
        upstream.enqueue(Reply.stream(events, spacing_s=0.02))
        async with client.stream("POST", f"{upstream.url}/v1/messages") as response:
            async for _ in response.aiter_raw():
                break
        for _ in range(100):
            if upstream.disconnects:
                break
            await asyncio.sleep(0.01)
        assert len(upstream.disconnects) == 1
        assert upstream.disconnects[0].chunks_sent < 50


async def test_stall_before_headers_and_disconnect_during_it() -> None:
    async with FakeUpstream() as upstream, httpx2.AsyncClient() as client:
        upstream.enqueue(Reply(headers_delay_s=5.0))
        request = asyncio.create_task(client.get(f"{upstream.url}/slow"))
        await asyncio.sleep(0.1)
        request.cancel()
        for _ in range(100):
            if upstream.disconnects:
                break
            await asyncio.sleep(0.01)
        assert upstream.disconnects[0].chunks_sent == 0


async def test_upstream_dying_mid_stream_breaks_the_body() -> None:
    events = [sse("ping", {"type": "ping"}) for _ in range(5)]
    async with FakeUpstream() as upstream, httpx2.AsyncClient() as client:
        upstream.enqueue(
            Reply(
                headers={"content-type": "text/event-stream"},
                chunks=tuple((0.0, e) for e in events),
                die_after=2,
            )
        )
        received = b""
        failed = False
        try:
            async with client.stream("POST", f"{upstream.url}/v1/messages") as response:
                async for chunk in response.aiter_raw():
                    received += chunk
        except httpx2.RemoteProtocolError:
            failed = True
        assert failed
        assert received == b"".join(events[:2])
