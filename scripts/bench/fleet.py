"""Two proxy instances over one PostgreSQL database: issue 16's two-instance run.

Processes, all on loopback, started as ``run.py`` starts them: the fake upstream and the load
generators (``wrk``) on CPU 1; instances A and B (``proxy_server.py --postgres --store-watch``:
one data directory and so one key, one scratch database, and the store watch running as in
``serve``, so that each picks up the other's account changes) both on CPU 0. Sharing the
proxies' core keeps the CPU budget of ``run.py``'s single proxy, so the figures say what sharing
a database costs each instance (the store watch's reads, two writers committing into one
table, half the load each to batch and amortise over), not how far two cores would scale.

Two phases, alternated for ``--rounds`` rounds so that drifting machine load affects both
alike: **one**, one ``wrk`` at ``--concurrency`` connections to A alone; **two**, two ``wrk`` at
once, half the connections each, to A and to B. Each phase reports requests/s, each
instance's CPU ms per request (its process, from ``/proc``, until it is idle again) and the
CPU of the PostgreSQL backends serving the database per request. At the end the database must
hold a row for every request the instances sent upstream (they share one account, so the fake
upstream counts them together); the run exits non-zero when one is missing or a request failed.

Usage: uv run python scripts/bench/fleet.py [--seconds S] [--rounds N] [--concurrency C] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import run
from postgres_scratch import ScratchDatabase, admin_url, scratch_database

HERE = Path(__file__).resolve().parent
INSTANCES = ("A", "B")


@dataclass
class Phase:
    """One phase's slices, summed: each instance's cell and the backends' CPU."""

    instances: dict[str, run.Cell] = field(default_factory=dict[str, run.Cell])
    backend_cpu_s: float = 0.0

    def requests(self) -> int:
        return sum(cell.requests for cell in self.instances.values())

    def rps(self) -> float:
        """Requests per second of the instances together (their slices run at once)."""
        return sum(cell.rps() for cell in self.instances.values())


async def run_phase(
    phase: Phase,
    targets: list[run.Target],
    database: ScratchDatabase,
    body: Path,
    concurrency: int,
    seconds: int,
) -> None:
    """One slice: ``concurrency`` connections split evenly over ``targets``, at once."""
    await database.backend_cpu_seconds()
    await asyncio.gather(
        *(
            run.run_wrk(
                target,
                body,
                concurrency // len(targets),
                seconds,
                phase.instances.setdefault(target.name, run.Cell()),
            )
            for target in targets
        )
    )
    phase.backend_cpu_s += await database.backend_cpu_seconds()


@dataclass
class Fleet:
    one: Phase
    two: Phase
    recorded: int
    sent: int


async def measure(args: argparse.Namespace, tmp: Path) -> Fleet:
    settings = run.Settings(
        quick=False, seconds=args.seconds, rounds=args.rounds, warmup=True, soak=1,
        settle_s=0.0, paced_streams=0, externals=(), proxy_python=sys.executable,
        proxy_script=HERE / "proxy_server.py", variants=("proxy-pg",),
    )  # fmt: skip
    body = tmp / "body.json"
    body.write_bytes(run.request_body(stream=not args.json))
    up_port = run._free_port()  # pyright: ignore[reportPrivateUsage] (the runner's own helper)
    upstream_url = f"http://127.0.0.1:{up_port}"
    limits = httpx2.Limits(max_connections=8)
    async with (
        contextlib.AsyncExitStack() as stack,
        httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(30.0)) as client,
    ):
        stack.enter_context(
            run._spawn(  # pyright: ignore[reportPrivateUsage]
                [sys.executable, "fake_upstream.py", str(up_port)],
                cpu=run.LOAD_CPU,
                log=tmp / "up.log",
            )
        )
        database = await stack.enter_async_context(scratch_database(admin_url()))
        targets: list[run.Target] = []
        for name in INSTANCES:
            # One after the other: the first adds the account, the next finds it.
            target = run.start_proxy(
                stack,
                settings,
                "proxy-pg",
                tmp,
                upstream_url,
                database=database,
                data=tmp / "data",
                options=("--store-watch",),
            )
            target.name, target.database = name, None
            await run._wait_ready(client, target)  # pyright: ignore[reportPrivateUsage]
            if problems := await run.verify(client, target):
                raise RuntimeError(f"instance {name} answers wrongly: {'; '.join(problems)}")
            targets.append(target)
        run._progress("both instances answer JSON and SSE correctly")  # pyright: ignore[reportPrivateUsage]
        one, two = Phase(), Phase()
        for target in targets:  # warm-up
            await run.run_wrk(target, body, args.concurrency // 2, 1, None)
        for r in range(args.rounds):
            phases = [(one, targets[:1]), (two, targets)]
            for phase, serving in phases[r % 2 :] + phases[: r % 2]:
                await run_phase(phase, serving, database, body, args.concurrency, args.seconds)
            run._progress(  # pyright: ignore[reportPrivateUsage]
                f"round {r + 1}: one {one.rps():,.0f}, two {two.rps():,.0f} req/s"
            )
        recorded, sent = await run.recorded_on(
            client, up_port, tmp / "data", targets[0], database.url
        )
        for target in targets:
            if target.proc.poll() is not None:
                raise RuntimeError(f"instance {target.name} died during the run")
    return Fleet(one, two, recorded, sent)


def report(fleet: Fleet, args: argparse.Namespace) -> None:
    print()
    print(f"Machine: {run._machine()}")  # pyright: ignore[reportPrivateUsage]
    print(
        f"{'JSON' if args.json else 'SSE (20 events)'}, {args.concurrency} connections in all,"
        f" {args.seconds} s per slice, {args.rounds} rounds, phases alternated; instances on"
        f" CPU {run.PROXY_CPU}, upstream + wrk on CPU {run.LOAD_CPU}; one PostgreSQL database."
    )
    print()
    run._table_head(  # pyright: ignore[reportPrivateUsage]
        "phase", "instance", "req/s", "CPU ms/req", "PostgreSQL backends CPU ms/req", "errors"
    )
    for label, phase in (("one instance", fleet.one), ("two instances", fleet.two)):
        for name, cell in phase.instances.items():
            print(
                f"| {label} | {name} | {cell.rps():,.0f} | {cell.cpu_ms_per_request():.3f} |  |"
                f" {cell.errors} |"
            )
        requests = phase.requests()
        own = sum(cell.cpu_s for cell in phase.instances.values()) * 1000 / requests
        backends = phase.backend_cpu_s * 1000 / requests
        errors = sum(cell.errors for cell in phase.instances.values())
        print(f"| {label} | all | {phase.rps():,.0f} | {own:.3f} | {backends:.3f} | {errors} |")
    print()
    print(
        f"Recording: {fleet.recorded} rows in the shared database for {fleet.sent} requests the"
        " instances sent upstream (rows may exceed it: wrk abandons requests in flight when a"
        " slice ends, and those are recorded too)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=5, help="seconds per wrk slice")
    parser.add_argument("--rounds", type=int, default=3, help="slices per phase")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="connections in all (even, split over both)"
    )
    parser.add_argument("--json", action="store_true", help="JSON requests instead of SSE")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 600 or args.rounds < 1:
        parser.error("--seconds must be in [1, 600]; --rounds at least 1")
    if args.concurrency < 2 or args.concurrency % 2:
        parser.error("--concurrency must be even and at least 2 (it is split over two instances)")
    signal.signal(signal.SIGTERM, run._exit_on_sigterm)  # pyright: ignore[reportPrivateUsage]
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        fleet = asyncio.run(measure(args, Path(tmp)))
    report(fleet, args)
    errors = sum(
        cell.errors for phase in (fleet.one, fleet.two) for cell in phase.instances.values()
    )
    if errors or fleet.recorded < fleet.sent:
        print(f"\nFAILED: {errors} errors, or requests missing from the database (see above)")
        sys.exit(1)


if __name__ == "__main__":
    main()
