"""Every upstream transport against a real server: streaming, deadlines, failures, exact bytes.

Every behaviour the pipeline relies on is proven for each implementation of the seam, so the
server can use any of them for its proxy leg.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from better_ccflare.providers import UpstreamRequest
from better_ccflare.proxy import (
    AiohttpTransport,
    H1Transport,
    Timeouts,
    UpstreamConnectError,
    UpstreamTimeoutError,
    UpstreamTransport,
)

from .support.fake_upstream import FakeUpstream, Reply, sse
from .support.httpx2_transport import Httpx2Transport

MakeTransport = Callable[..., UpstreamTransport]


def h1_transport(**options: int) -> H1Transport:
    """The server's proxy leg: plain HTTP/1.1, aiohttp for environment proxies."""
    return H1Transport(proxied=AiohttpTransport(), **options)


@pytest.fixture(
    params=[Httpx2Transport, AiohttpTransport, h1_transport], ids=["httpx2", "aiohttp", "h1"]
)
def make_transport(request: pytest.FixtureRequest) -> MakeTransport:
    factory: MakeTransport = request.param
    return factory


@pytest.fixture
async def transport(make_transport: MakeTransport) -> AsyncIterator[UpstreamTransport]:
    transport = make_transport()
    yield transport
    await transport.aclose()


def request(url: str, body: bytes = b"{}", method: str = "POST") -> UpstreamRequest:
    return UpstreamRequest(
        method=method, url=url, headers={"content-type": "application/json"}, body=body
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def wait_for_disconnect(upstream: FakeUpstream) -> None:
    for _ in range(200):
        if upstream.disconnects:
            return
        await asyncio.sleep(0.01)


async def test_streams_chunks_as_they_arrive_and_records_headers(
    transport: UpstreamTransport,
) -> None:
    events = [sse("ping", {"type": "ping", "n": i}) for i in range(3)]
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


async def test_first_chunk_is_delivered_before_the_stream_ends(
    transport: UpstreamTransport,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.enqueue(
            Reply(
                headers={"content-type": "text/event-stream"},
                chunks=((0.0, b"data: 1\n\n"), (5.0, b"data: 2\n\n")),
            )
        )
        response = await transport.send(request(upstream.url), Timeouts())
        chunks = response.aiter_raw()
        first = await asyncio.wait_for(anext(chunks), timeout=2.0)
        assert first == b"data: 1\n\n"
        await response.aclose()


async def test_request_headers_and_body_reach_the_upstream_unchanged(
    transport: UpstreamTransport,
) -> None:
    body = bytes(range(256)) * 3
    headers = {
        "content-type": "application/json",
        "user-agent": "claude-cli/1.0.0 (external, cli)",
        "accept-encoding": "identity",
        "anthropic-beta": "a-1,b-2",
        "x-odd": "Mixed Case; value=1",
    }
    async with FakeUpstream() as upstream:
        response = await transport.send(
            UpstreamRequest(
                method="POST",
                url=f"{upstream.url}/v1/messages?beta=true",
                headers=headers,
                body=body,
            ),
            Timeouts(),
        )
        await response.aread()
        await response.aclose()
        seen = upstream.requests[0]
        assert (seen.method, seen.path, seen.query) == ("POST", "/v1/messages", "beta=true")
        assert seen.body == body
        assert seen.headers["content-length"] == str(len(body))
        for name, value in headers.items():
            assert seen.headers[name] == value


async def test_repeated_response_headers_stay_repeated_in_order(
    transport: UpstreamTransport,
) -> None:
    async with FakeUpstream() as upstream:
        # Two spellings of one name: the fake upstream writes both lines, as a real server may.
        upstream.enqueue(Reply(headers={"set-cookie": "a=1", "Set-Cookie": "b=2"}, body=b"x"))
        response = await transport.send(request(upstream.url), Timeouts())
        await response.aclose()
        assert [v for k, v in response.headers if k == "set-cookie"] == ["a=1", "b=2"]


async def test_compressed_bodies_pass_through_undecoded(transport: UpstreamTransport) -> None:
    payload = gzip.compress(b'{"type":"message"}' * 50)
    async with FakeUpstream() as upstream:
        upstream.enqueue(
            Reply(
                headers={"content-type": "application/json", "content-encoding": "gzip"},
                body=payload,
            ),
            Reply(
                headers={"content-type": "text/event-stream", "content-encoding": "gzip"},
                chunks=((0.0, payload[:40]), (0.0, payload[40:])),
            ),
        )
        for _ in range(2):
            response = await transport.send(request(upstream.url), Timeouts())
            assert response.header("content-encoding") == "gzip"
            assert await response.aread() == payload
            await response.aclose()


async def test_first_byte_deadline(transport: UpstreamTransport) -> None:
    async with FakeUpstream() as upstream:
        upstream.enqueue(Reply(headers_delay_s=2.0))
        with pytest.raises(UpstreamTimeoutError) as info:
            await transport.send(request(upstream.url), Timeouts(first_byte_s=0.1))
        assert info.value.phase == "first_byte"


async def test_waiting_for_a_pooled_connection_is_bounded_by_the_connect_deadline(
    make_transport: MakeTransport,
) -> None:
    transport = make_transport(max_connections=1)
    async with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream([b"data: 1\n\n", b"data: 2\n\n"], spacing_s=5.0))
        holding = await transport.send(request(upstream.url), Timeouts())
        with pytest.raises(UpstreamTimeoutError) as info:
            await transport.send(request(upstream.url), Timeouts(connect_s=0.2))
        assert info.value.phase == "connect"
        await holding.aclose()
    await transport.aclose()


async def test_idle_deadline_between_chunks(transport: UpstreamTransport) -> None:
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


async def test_refused_connection_is_a_connect_error(transport: UpstreamTransport) -> None:
    with pytest.raises(UpstreamConnectError):
        await transport.send(request(f"http://127.0.0.1:{free_port()}/"), Timeouts(connect_s=1.0))


async def test_upstream_dying_mid_body_is_a_connect_error(transport: UpstreamTransport) -> None:
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


async def test_cancelling_during_headers_closes_the_upstream_connection(
    transport: UpstreamTransport,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.enqueue(Reply(headers_delay_s=5.0))
        task = asyncio.create_task(transport.send(request(upstream.url), Timeouts()))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_for_disconnect(upstream)
        assert [d.chunks_sent for d in upstream.disconnects] == [0]


async def test_closing_a_response_mid_stream_closes_the_upstream_connection(
    transport: UpstreamTransport,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.enqueue(Reply.stream([b"data: %d\n\n" % i for i in range(5)], spacing_s=0.2))
        response = await transport.send(request(upstream.url), Timeouts())
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"data: 0\n\n"
        await response.aclose()
        await wait_for_disconnect(upstream)
        assert [d.chunks_sent for d in upstream.disconnects] == [1]


async def test_a_finished_response_leaves_its_connection_for_the_next_request(
    transport: UpstreamTransport,
) -> None:
    async with FakeUpstream() as upstream:
        for _ in range(3):
            response = await transport.send(request(upstream.url), Timeouts())
            await response.aread()
            await response.aclose()
        await asyncio.sleep(0.05)
        assert len(upstream.requests) == 3
        assert upstream.disconnects == []
        assert upstream.connections == 1


async def test_the_environment_proxy_is_used(
    make_transport: MakeTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeUpstream() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        transport = make_transport()
        response = await transport.send(
            request("http://upstream.invalid/v1/messages"), Timeouts(connect_s=2.0)
        )
        await response.aread()
        await response.aclose()
        await transport.aclose()
        assert proxy.requests[0].path == "http://upstream.invalid/v1/messages"


async def test_no_proxy_hosts_are_reached_directly(
    make_transport: MakeTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    transport = make_transport()
    async with FakeUpstream() as upstream:
        response = await transport.send(request(f"{upstream.url}/v1/messages"), Timeouts())
        await response.aread()
        await response.aclose()
        assert upstream.requests[0].path == "/v1/messages"
    await transport.aclose()


async def test_aiohttp_adds_no_client_headers_or_cookies_of_its_own() -> None:
    """Unlike httpx2, which adds its User-Agent and replays cookies across accounts."""
    transport = AiohttpTransport()
    async with FakeUpstream() as upstream:
        upstream.enqueue(Reply(headers={"set-cookie": "__cf_bm=abc; Path=/"}, body=b"{}"))
        by_name = upstream.url.replace("127.0.0.1", "localhost")  # jars ignore IP hosts
        for method, body in (("POST", b"{}"), ("GET", b"")):
            response = await transport.send(
                UpstreamRequest(method=method, url=by_name, headers={"x-a": "1"}, body=body),
                Timeouts(),
            )
            await response.aread()
            await response.aclose()
    await transport.aclose()
    first, second = upstream.requests
    assert set(first.headers) == {"host", "accept", "content-length", "x-a"}
    assert set(second.headers) == {"host", "accept", "x-a"}


async def test_a_closed_aiohttp_transport_refuses_to_send() -> None:
    transport = AiohttpTransport()
    await transport.aclose()
    with pytest.raises(RuntimeError):
        await transport.send(request("http://127.0.0.1:9/"), Timeouts())
