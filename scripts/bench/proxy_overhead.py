"""Proxy overhead: Messages API requests sent to a fake upstream directly and via the proxy.

Three processes on loopback:

- a fast fake Anthropic upstream (raw asyncio HTTP/1.1 with keep-alive, no framework), pinned to
  CPU 1: ``POST /v1/messages`` answers a canned JSON message (~600 B) or, when the body has
  ``"stream": true``, a canned 20-event SSE stream sent as one chunked response;
- the proxy (the real ``Service`` under uvicorn, one console account whose ``custom_endpoint`` is
  the fake upstream, payload storage off, jobs off), pinned to CPU 0;
- the load generator (this process, httpx2 with a keep-alive pool), pinned to CPU 1.

For JSON and SSE bodies at concurrency 1 and 16 it measures requests/s and p50/p99 latency
(until the whole body is read) DIRECT and VIA PROXY, interleaved in rounds, and the proxy's CPU
time per request from ``/proc/<pid>/stat`` (user + system, all threads), plus the proxy's RSS at
the end. Every response must be 200 and every SSE body must contain all 20 events.

The load generator is Python too and shares CPU 1 with the upstream, so absolute requests/s are
bounded by the client; the proxy CPU ms per request is the number to compare.

Usage: uv run python scripts/bench/proxy_overhead.py [--seconds S] [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import uvicorn

from better_ccflare.core import Account, Credentials, ProviderKind, load_config
from better_ccflare.server import Service

MODEL = "claude-sonnet-4-5-20250929"
SSE_EVENTS = 20
MAX_REQUESTS_PER_SLICE = 2_000_000
STARTUP_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------- canned upstream


def _message_json() -> bytes:
    message = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [
            {
                "type": "text",
                "text": "Hello! This is a canned reply from the fake upstream used to measure "
                "how much time and CPU the proxy adds to each request. " * 2,
            }
        ],
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


def _sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _sse_stream() -> bytes:
    deltas = SSE_EVENTS - 5
    events = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_02",
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 20, "output_tokens": 1},
                },
            },
        ),
        _sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    events += [
        _sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": f"word{i} "},
            },
        )
        for i in range(deltas)
    ]
    events += [
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": deltas},
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
    assert len(events) == SSE_EVENTS
    return b"".join(events)


def _json_response() -> bytes:
    body = _message_json()
    head = (
        "HTTP/1.1 200 OK\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "request-id: req_bench\r\n"
        "\r\n"
    )
    return head.encode() + body


def _sse_response() -> bytes:
    body = _sse_stream()
    head = (
        "HTTP/1.1 200 OK\r\n"
        "content-type: text/event-stream\r\n"
        "cache-control: no-cache\r\n"
        "transfer-encoding: chunked\r\n"
        "request-id: req_bench\r\n"
        "\r\n"
    )
    return head.encode() + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


async def _read_body(reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> bytes:
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts: list[bytes] = []
        for _ in range(100_000):
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return b"".join(parts)
    length = int(headers.get(b"content-length", b"0"))
    return await reader.readexactly(length) if length else b""


async def _handle_upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    json_reply = _json_response()
    sse_reply = _sse_response()
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            request_line = lines[0].split(b" ")
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            body = await _read_body(reader, headers)
            if request_line[:2] != [b"POST", b"/v1/messages"]:
                writer.write(_NOT_FOUND)
            elif b'"stream":true' in body.replace(b" ", b""):
                writer.write(sse_reply)
            else:
                writer.write(json_reply)
            await writer.drain()
            if headers.get(b"connection", b"").lower() == b"close":
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def _serve_upstream(port: int) -> None:
    server = await asyncio.start_server(_handle_upstream, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


# --------------------------------------------------------------------------- proxy process


async def _serve_proxy(port: int, upstream_url: str, tmp: Path) -> None:
    config = load_config(
        {
            "XDG_CONFIG_HOME": str(tmp / "xdg"),
            "STORE_PAYLOADS": "false",
            "LOG_LEVEL": "ERROR",
        },
        cwd=tmp,
    )
    async with Service.running(config, jobs=False) as service:
        await service.store.accounts.add(
            Account(
                id="bench",
                name="bench",
                provider=ProviderKind.CONSOLE.value,
                created_at_ms=0,
                custom_endpoint=upstream_url,
                credentials=Credentials(api_key="sk-ant-api03-bench"),
            )
        )
        await service.pool.reload()
        server = uvicorn.Server(
            uvicorn.Config(
                service.app,
                host="127.0.0.1",
                port=port,
                log_config=None,
                access_log=False,
                lifespan="off",
                server_header=False,
            )
        )
        await server.serve()


# --------------------------------------------------------------------------- load generator


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _request_body(stream: bool) -> bytes:
    body: dict[str, object] = {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Say hello in a few words."}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


HEADERS = {
    "content-type": "application/json",
    "x-api-key": "client-key",
    "anthropic-version": "2023-06-01",
}


@dataclass
class Cell:
    """Accumulated results for one (body, concurrency, target) combination."""

    latencies: list[float] = field(default_factory=list[float])
    seconds: float = 0.0
    errors: int = 0
    first_error: str = ""
    proxy_cpu_s: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _check(response: httpx2.Response, stream: bool) -> str:
    if response.status_code != 200:
        return f"status {response.status_code}: {response.text[:200]}"
    if stream:
        text = response.text
        events = text.count("event: ")
        if events != SSE_EVENTS or "event: message_stop" not in text:
            return f"incomplete SSE body: {events} events"
    elif b'"type":"message"' not in response.content.replace(b" ", b""):
        return f"unexpected JSON body: {response.content[:200]!r}"
    return ""


async def _slice(
    client: httpx2.AsyncClient,
    url: str,
    stream: bool,
    concurrency: int,
    seconds: float,
    cell: Cell | None,
) -> None:
    """Run ``concurrency`` workers for ``seconds``; record into ``cell`` (None: warm-up)."""
    body = _request_body(stream)
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    errors: list[str] = []

    async def worker() -> None:
        for _ in range(MAX_REQUESTS_PER_SLICE):
            start = time.perf_counter()
            if start >= deadline or len(errors) > 50:
                return
            try:
                response = await client.post(url, content=body, headers=HEADERS)
                problem = _check(response, stream)
            except httpx2.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                errors.append(problem)
            else:
                latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    if cell is not None:
        cell.latencies += latencies
        cell.seconds += elapsed
        cell.errors += len(errors)
        if errors and not cell.first_error:
            cell.first_error = errors[0]


async def _wait_ready(client: httpx2.AsyncClient, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            response = await client.post(url, content=_request_body(False), headers=HEADERS)
            if response.status_code == 200:
                return
            last = f"status {response.status_code}: {response.text[:200]}"
        except httpx2.HTTPError as exc:
            last = repr(exc)
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {STARTUP_TIMEOUT_S} s: {last}")


@contextlib.contextmanager
def _child(*args: str, stderr: Path) -> Generator[subprocess.Popen[bytes]]:
    with stderr.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, __file__, *args], stderr=sink)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass(frozen=True)
class Scenario:
    stream: bool
    concurrency: int

    @property
    def label(self) -> str:
        return "SSE" if self.stream else "JSON"


SCENARIOS = (Scenario(False, 1), Scenario(False, 16), Scenario(True, 1), Scenario(True, 16))


async def _measure(args: argparse.Namespace) -> None:
    seconds: float = args.seconds
    rounds: int = args.rounds
    warmup: float = args.warmup
    _pin(1)
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        up_port, proxy_port = _free_port(), _free_port()
        upstream_base = f"http://127.0.0.1:{up_port}"
        direct_url = f"{upstream_base}/v1/messages"
        proxy_url = f"http://127.0.0.1:{proxy_port}/v1/messages"
        up_log, proxy_log = Path(tmp) / "upstream.stderr", Path(tmp) / "proxy.stderr"
        limits = httpx2.Limits(max_connections=64, max_keepalive_connections=64)
        timeout = httpx2.Timeout(REQUEST_TIMEOUT_S)
        with (
            _child("--serve-upstream", str(up_port), stderr=up_log) as upstream,
            _child("--serve-proxy", str(proxy_port), upstream_base, tmp, stderr=proxy_log) as proxy,
        ):
            async with (
                httpx2.AsyncClient(limits=limits, timeout=timeout) as direct_client,
                httpx2.AsyncClient(limits=limits, timeout=timeout) as proxy_client,
            ):
                await _wait_ready(direct_client, direct_url, upstream)
                await _wait_ready(proxy_client, proxy_url, proxy)
                rss_start = _rss_mib(proxy.pid)
                cells: dict[tuple[Scenario, str], Cell] = {}
                for scenario in SCENARIOS:
                    direct, via = Cell(), Cell()
                    cells[scenario, "direct"], cells[scenario, "proxy"] = direct, via
                    for client, url in ((direct_client, direct_url), (proxy_client, proxy_url)):
                        await _slice(
                            client, url, scenario.stream, scenario.concurrency, warmup, None
                        )
                    per_slice = seconds / rounds
                    for r in range(rounds):
                        order = [("direct", direct_client, direct_url, direct)]
                        order.append(("proxy", proxy_client, proxy_url, via))
                        if r % 2:
                            order.reverse()
                        for target, client, url, cell in order:
                            cpu_before = _cpu_seconds(proxy.pid)
                            await _slice(
                                client, url, scenario.stream, scenario.concurrency, per_slice, cell
                            )
                            if target == "proxy":
                                cell.proxy_cpu_s += _cpu_seconds(proxy.pid) - cpu_before
                    print(
                        f"  {scenario.label} c={scenario.concurrency}: direct {direct.rps():,.0f}"
                        f" req/s, proxy {via.rps():,.0f} req/s",
                        file=sys.stderr,
                    )
                rss_end = _rss_mib(proxy.pid)
        proxy_lines = proxy_log.read_text(errors="replace").splitlines()
        up_lines = up_log.read_text(errors="replace").splitlines()
    _report(cells, rss_start, rss_end, args)
    httpx2_lines = sum("httpx2" in line for line in proxy_lines)
    print(
        f"Proxy stderr: {len(proxy_lines)} lines ({httpx2_lines} from httpx2);"
        f" upstream stderr: {len(up_lines)} lines."
    )
    others = [line for line in proxy_lines + up_lines if "httpx2" not in line]
    for line in others[:10]:
        print(f"  stderr: {line[:200]}")
    if any(cell.errors for cell in cells.values()):
        sys.exit(1)


def _report(
    cells: dict[tuple[Scenario, str], Cell],
    rss_start: float,
    rss_end: float,
    args: argparse.Namespace,
) -> None:
    print()
    print(
        f"Python {sys.version.split()[0]} ({platform.machine()}), {os.cpu_count()} CPUs;"
        f" {args.seconds:g} s per cell in {args.rounds} round(s), warm-up {args.warmup:g} s"
    )
    print()
    print(
        "| body | conc | target | req/s | vs direct | p50 ms | p99 ms | proxy CPU ms/req | errors |"
    )
    print(
        "|------|-----:|--------|------:|----------:|-------:|-------:|-----------------:|-------:|"
    )
    for scenario in SCENARIOS:
        direct = cells[scenario, "direct"]
        for target in ("direct", "proxy"):
            cell = cells[scenario, target]
            ratio = f"{cell.rps() / direct.rps():.2f}x" if direct.rps() else "n/a"
            cpu = (
                f"{cell.proxy_cpu_s * 1000 / cell.ok:.2f}" if target == "proxy" and cell.ok else ""
            )
            print(
                f"| {scenario.label} | {scenario.concurrency} | {target} | {cell.rps():,.0f}"
                f" | {ratio} | {cell.pct(0.5):.2f} | {cell.pct(0.99):.2f} | {cpu}"
                f" | {cell.errors} |"
            )
    print()
    print(f"Proxy RSS: {rss_start:.1f} MiB after start-up, {rss_end:.1f} MiB at the end.")
    for (scenario, target), cell in cells.items():
        if cell.first_error:
            print(
                f"First error, {scenario.label} c={scenario.concurrency} {target}:"
                f" {cell.first_error}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument("--rounds", type=int, default=2, help="direct/proxy alternations per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per target")
    parser.add_argument("--quick", action="store_true", help="a few seconds in total (CI smoke)")
    parser.add_argument("--serve-upstream", metavar="PORT", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-proxy", nargs=3, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream is not None:
        _pin(1)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_upstream(int(args.serve_upstream)))
        return
    if args.serve_proxy is not None:
        _pin(0)
        port, upstream_url, tmp = (str(a) for a in args.serve_proxy)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_proxy(int(port), upstream_url, Path(tmp)))
        return
    if args.quick:
        args.seconds, args.rounds, args.warmup = 0.5, 1, 0.2
    if args.seconds <= 0 or args.rounds < 1 or args.seconds > 600:
        parser.error("--seconds must be in (0, 600] and --rounds at least 1")
    asyncio.run(_measure(args))


if __name__ == "__main__":
    main()
