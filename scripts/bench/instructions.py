"""Instructions per proxied request, counted by valgrind's callgrind: a repeatable CPU figure.

CPU milliseconds from ``/proc`` move by ±20 % between quick runs on a shared two-core machine,
which hides a regression of a few microseconds. Callgrind counts the instructions the proxy
process executes (every thread: the event loop and the writer thread) and its children (the
writer process that records requests on SQLite), which is the same for the same code and load
whatever else the machine does. It runs the proxy about fifty
times slower, so the figure is instructions, not time; compare two checkouts, not machines.

The proxy (``proxy_server.py``, as ``serve`` runs it, recording on) starts under callgrind with
counting off; ``wrk`` warms it up, counting is switched on for a measured slice of requests and
for one more second (so the writer's batch for them is counted), then off again. The figure is
the counted instructions over the requests the fake upstream saw from the proxy in that slice.

Usage: uv run python scripts/bench/instructions.py [--stream] [--connections C] [--seconds S]
       [--no-metrics] [--dump FILE]
Needs valgrind (Debian's ``valgrind``) and wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import proxy_server
import run

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the process on port {port} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)  # noqa: TID251 - a synchronous script: no event loop to block
    raise SystemExit(f"nothing answered on port {port} within {timeout_s:.0f} s")


def _upstream_count(upstream_port: int, key: str) -> int:
    reply = httpx2.get(f"http://127.0.0.1:{upstream_port}/stats", timeout=10)
    return int(reply.json().get(key, 0))


def _wrk(port: int, body_file: Path, connections: int, seconds: float) -> None:
    subprocess.run(
        [
            "taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s",
            "--timeout", "30s", "-s", str(HERE / "wrk_messages.lua"),
            f"http://127.0.0.1:{port}/v1/messages",
        ],
        env={**os.environ, "BENCH_BODY_FILE": str(body_file)},
        check=True,
        capture_output=True,
    )  # fmt: skip


def _callgrind(*args: str) -> None:
    """Tell every process running under callgrind (the proxy and its writer process)."""
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True)


def _total_instructions(out_file: Path) -> int:
    """The ``totals:`` line of the dump written when counting was switched off."""
    for line in reversed(out_file.read_text().splitlines()):
        match = re.match(r"(?:totals|summary):\s+(\d+)", line)
        if match:
            return int(match.group(1))
    raise SystemExit(f"no totals in {out_file}")


def measure(
    *,
    stream: bool,
    connections: int,
    seconds: float,
    warmup_s: float,
    keep_dump: Path | None = None,
    proxy_args: tuple[str, ...] = (),
) -> tuple[float, int]:
    """(instructions per request, requests counted) for one kind of request and concurrency."""
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install valgrind wrk)")
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as scratch:
        work = Path(scratch)
        body_file = work / "body.json"
        body_file.write_bytes(run.request_body(stream=stream))
        upstream_port, proxy_port = _free_port(), _free_port()
        upstream = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, str(HERE / "fake_upstream.py"),
             str(upstream_port)],
        )  # fmt: skip
        out_file = work / "callgrind.out.%p"
        proxy = subprocess.Popen(
            ["taskset", "-c", "0", "valgrind", "--tool=callgrind", "--instr-atstart=no",
             "--trace-children=yes", f"--callgrind-out-file={out_file}",
             sys.executable, str(HERE / "proxy_server.py"),
             str(proxy_port), f"http://127.0.0.1:{upstream_port}", str(work / "data"),
             *proxy_args],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_for_port(upstream_port, upstream, 30)
            _wait_for_port(proxy_port, proxy, 300)
            _wrk(proxy_port, body_file, connections, warmup_s)
            key = proxy_server.upstream_key(
                recording=True, metrics="--no-metrics" not in proxy_args
            )
            before = _upstream_count(upstream_port, key)
            _callgrind("-i", "on")
            _wrk(proxy_port, body_file, connections, seconds)
            time.sleep(1.5)  # noqa: TID251 - let the last requests finish before -i off
            _callgrind("-i", "off")
            requests = _upstream_count(upstream_port, key) - before
            _callgrind("-d")
            time.sleep(1)  # noqa: TID251 - let callgrind write its dump
        finally:
            proxy.terminate()
            upstream.terminate()
            proxy.wait(60)
            upstream.wait(10)
        # Per process: its largest dump (the -d one; the one at exit counted nothing more).
        largest: dict[str, tuple[int, Path]] = {}
        for dump in work.glob("callgrind.out.*"):
            if dump.stat().st_size:
                pid = dump.name.split(".")[2]
                largest[pid] = max(largest.get(pid, (0, dump)), (_total_instructions(dump), dump))
        if keep_dump is not None and largest:
            shutil.copyfile(max(largest.values())[1], keep_dump)
        total = sum(count for count, _ in largest.values())
        if requests <= 0 or not total:
            raise SystemExit("no requests were counted")
        return total / requests, requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stream", action="store_true", help="20-event SSE instead of JSON")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument(
        "--no-metrics", action="store_true", help="the proxy without its metrics (issue 17's bar)"
    )
    parser.add_argument(
        "--dump",
        type=Path,
        help="keep the measured slice's callgrind file here (callgrind_annotate)",
    )
    args = parser.parse_args()
    per_request, requests = measure(
        stream=args.stream,
        connections=args.connections,
        seconds=args.seconds,
        warmup_s=args.warmup,
        keep_dump=args.dump,
        proxy_args=("--no-metrics",) if args.no_metrics else (),
    )
    kind = "SSE" if args.stream else "JSON"
    print(
        json.dumps(
            {
                "kind": kind,
                "connections": args.connections,
                "requests": requests,
                "instructions_per_request": round(per_request),
            }
        )
    )


if __name__ == "__main__":
    main()
