"""The floor under the proxy's overhead: what the cheapest possible forwarders cost here.

The bar's throughput target is a ratio to a direct call, so it depends on how fast the fake
upstream is as much as on the proxy. This measures, in one interleaved run and on the same
terms as ``run.py`` (streams of 20 events at concurrency 16, the forwarder pinned to CPU 0, the
upstream and wrk on CPU 1), what a Python forwarder costs before it does any of a proxy's
work:

- ``server-only``: uvicorn answering every request with the stream itself, no upstream at all;
- ``aiohttp``: uvicorn forwarding each request through aiohttp, nothing else;
- ``h1``: the same through the proxy's own ``H1Transport``;
- ``proxy``: better-ccflare as ``serve`` runs it (``proxy_server.py``, recording on).

Usage: python scripts/bench/floor.py [--seconds 3] [--rounds 3]
(``floor.py --serve MODE PORT UPSTREAM_URL`` is how it starts a forwarder.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import fake_upstream
import httpx2
import run
import uvicorn
import uvloop
from proxy_server import upstream_key

from better_ccflare.providers import UpstreamRequest
from better_ccflare.proxy import AiohttpTransport, H1Transport, Timeouts, UpstreamTransport

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MODES = ("server-only", "aiohttp", "h1")
_STREAM = b"".join(fake_upstream.sse_events())
_DROPPED = frozenset((b"host", b"content-length", b"x-api-key", b"connection"))


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def _server_only(scope: Scope, receive: Receive, send: Send) -> None:
    """The stream, straight from memory: what uvicorn alone costs per request."""
    if scope["type"] != "http":
        return
    await _read_body(receive)
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": _STREAM, "more_body": False})


def _forwarder(transport: UpstreamTransport, upstream_url: str) -> App:
    """Forward every request through ``transport`` with the upstream's key, nothing else."""
    key = upstream_key(recording=True)
    timeouts = Timeouts()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k not in _DROPPED}
        headers["x-api-key"] = key
        request = UpstreamRequest(
            method=scope["method"],
            url=upstream_url + scope["path"],
            headers=headers,
            body=await _read_body(receive),
        )
        response = await transport.send(request, timeouts)
        out = [(k.encode(), v.encode()) for k, v in response.headers if k != "transfer-encoding"]
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await response.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def _serve(mode: str, port: int, upstream_url: str) -> None:
    if mode == "server-only":
        app: App = _server_only
    elif mode == "aiohttp":
        app = _forwarder(AiohttpTransport(), upstream_url)
    else:
        app = _forwarder(H1Transport(proxied=AiohttpTransport()), upstream_url)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="none",
        http="httptools",
        lifespan="off",
        log_level="error",
        access_log=False,
    )
    await uvicorn.Server(config).serve()


async def measure(seconds: int, rounds: int, tmp: Path) -> None:
    up_port = run._free_port()  # pyright: ignore[reportPrivateUsage]
    upstream_url = f"http://127.0.0.1:{up_port}"
    body_file = tmp / "sse.json"
    body_file.write_bytes(run.request_body(stream=True))
    spawn = run._spawn  # pyright: ignore[reportPrivateUsage]
    with contextlib.ExitStack() as stack:
        python = sys.executable
        upstream = stack.enter_context(
            spawn(
                [python, str(run.HERE / "fake_upstream.py"), str(up_port)],
                cpu=run.LOAD_CPU,
                log=tmp / "up.log",
            )
        )
        targets = [run.Target("direct", up_port, "k", "k", upstream, tmp / "up.log")]
        for name in (*MODES, "proxy"):
            port = run._free_port()  # pyright: ignore[reportPrivateUsage]
            if name == "proxy":
                argv = [python, str(run.HERE / "proxy_server.py"), str(port), upstream_url]
                argv.append(str(tmp / "proxy"))
            else:
                argv = [python, __file__, "--serve", name, str(port), upstream_url]
            log = tmp / f"{name}.log"
            proc = stack.enter_context(spawn(argv, cpu=run.PROXY_CPU, log=log))
            targets.append(run.Target(name, port, "client-key", "k", proc, log))
        async with httpx2.AsyncClient(timeout=10.0) as client:
            for target in targets:
                await run._wait_ready(client, target)  # pyright: ignore[reportPrivateUsage]
        cells = {target.name: run.Cell() for target in targets}
        for target in targets:
            await run.run_wrk(target, body_file, 16, 1, None)  # warm-up
        for index in range(rounds):
            shift = index % len(targets)
            for target in targets[shift:] + targets[:shift]:
                await run.run_wrk(target, body_file, 16, seconds, cells[target.name])
    direct = cells["direct"].rps()
    print(f"SSE c=16, {rounds} x {seconds} s per target, interleaved; {run._machine()}")  # pyright: ignore[reportPrivateUsage]
    print("| target | req/s | vs direct | CPU ms/req |")
    print("|--------|------:|----------:|-----------:|")
    for target in targets:
        cell = cells[target.name]
        cpu = "" if target.name == "direct" else f"{cell.cpu_ms_per_request():.3f}"
        print(f"| {target.name} | {cell.rps():,.0f} | {cell.rps() / direct:.3f} | {cpu} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=3, help="seconds per wrk slice")
    parser.add_argument("--rounds", type=int, default=3, help="slices per target")
    parser.add_argument("--serve", nargs=3, metavar=("MODE", "PORT", "UPSTREAM_URL"))
    args = parser.parse_args()
    if args.serve is not None:
        mode, port, upstream_url = args.serve
        if mode not in MODES:
            parser.error(f"MODE must be one of {', '.join(MODES)}")
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(_serve(mode, int(port), upstream_url))
        return
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        asyncio.run(measure(args.seconds, args.rounds, Path(tmp)))


if __name__ == "__main__":
    main()
