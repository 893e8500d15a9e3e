"""What the per-key limits cost per request, in-process: a key without limits against one with
every limit, through the same calls the proxy makes.

For a key without limits the proxy pays one test (``key.limits is not None``). For a key with
limits it awaits :meth:`KeyGate.enter` before the upstream call and calls :meth:`KeyGate.leave`
with the record afterwards; this times both, on one event loop, with every in-memory limit set
(requests and tokens per minute, concurrency, three budgets, a model allow-list), the key
already seeded (the one read of the history happens on a key's first request), and the clock
moving 1 ms per request so the sliding minute holds 60,000 admissions. CPU time is
``time.process_time``. The shared-store (PostgreSQL) statements are not included: they are a
round trip each: ``--postgres URL`` (a database this may write to) times them too, as a key
with ``rpm`` and ``max_concurrent`` pays them per request on a shared store.

    uv run python scripts/bench/key_limits.py [--postgres postgresql://postgres@127.0.0.1/bench]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from better_ccflare.core import ApiKey, FakeClock, KeyLimits, RequestRecord, TokenUsage
from better_ccflare.database import SecretKey, Store
from better_ccflare.proxy import KeyGate
from better_ccflare.proxy._key_gate import Ticket  # what enter() returns when it admits

N = 100_000
LIMITS = KeyLimits(
    rpm=10**9,
    tpm=10**12,
    max_concurrent=64,
    budget_daily_usd=10**9,
    budget_weekly_usd=10**9,
    budget_monthly_usd=10**9,
    models=("claude-sonnet-*", "claude-haiku-*", "claude-opus-4-*"),
)


def _key(limits: KeyLimits | None) -> ApiKey:
    return ApiKey(
        id="k", name="dev", hashed_key="x:y", prefix_last_8="12345678", created_at_ms=0,
        limits=limits,
    )  # fmt: skip


async def fleet_statements(url: str, n: int = 2_000) -> None:
    """The shared-store statements a request of a key with rpm and max_concurrent adds."""
    async with await Store.open(url, key=SecretKey.generate()) as store:
        fleet = store.key_fleet
        assert fleet is not None
        cpu, wall = time.process_time(), time.perf_counter()
        for n_ in range(n):
            await fleet.take_minute("bench", n_ // 1000, 10**9)
            await fleet.enter("bench", 10**9, n_)
            fleet.leave("bench", n_)
        await store.flush()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"shared store (PostgreSQL) statements per request: {wall / n * 1e6:.0f} µs wall, "
        f"{cpu / n * 1e6:.0f} µs CPU in this process"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--postgres", help="also time the shared-store statements on this URL")
    args = parser.parse_args()
    clock = FakeClock()
    record = RequestRecord(
        id="r",
        timestamp_ms=0,
        method="POST",
        path="/v1/messages",
        model="claude-sonnet-4-5",
        usage=TokenUsage(input_tokens=12, output_tokens=300, cache_read_input_tokens=5000),
        cost_usd=0.0061,
    )
    with tempfile.TemporaryDirectory() as tmp:
        async with await Store.open(Path(tmp) / "bench.db", key=SecretKey.generate()) as store:
            gate = KeyGate(store, clock)
            limited, plain = _key(LIMITS), _key(None)
            await gate.enter(limited, LIMITS, "claude-sonnet-4-5")  # seeds the key

            start = time.process_time()
            passed = 0
            for _ in range(N):
                if plain.limits is not None:
                    passed += 1
            none_s = time.process_time() - start

            start = time.process_time()
            for _ in range(N):
                clock.advance(1)
                ticket = await gate.enter(limited, LIMITS, "claude-sonnet-4-5")
                assert isinstance(ticket, Ticket)
                gate.leave(ticket, record)
            limited_s = time.process_time() - start

            start = time.process_time()
            for _ in range(N):
                clock.advance(1)
            clock_s = time.process_time() - start

    print(f"key without limits (the None check): {none_s / N * 1e6:.3f} µs per request")
    print(
        "key with every in-memory limit (enter + leave): "
        f"{(limited_s - clock_s) / N * 1e6:.2f} µs per request "
        f"(the fake clock's own {clock_s / N * 1e6:.2f} µs taken out)"
    )
    if args.postgres:
        await fleet_statements(args.postgres)


if __name__ == "__main__":
    asyncio.run(main())
