"""Recording throughput of the database writer: batched versus one transaction per row.

Records realistic ``RequestRecord`` rows into a fresh SQLite file (in a temporary directory)
through the public store API, the way the proxy does:

- ``one-by-one``: ``record()`` then ``await flush()`` for every row, so each row is its own
  transaction (what writing without the batching writer would cost);
- ``batched``: ``record()`` for every row (fire-and-forget), one ``flush()`` at the end; the
  writer groups up to 500 rows per transaction;
- ``batched + 2 KB payload``: the same, plus a 2 KB payload per row (bodies are stored too);
- ``100 concurrent producers``: 100 tasks each record a row and yield to the loop, repeatedly,
  as concurrent requests finishing would; batches form by themselves.

It also reports what ``record()`` costs the event loop per call. Each mode runs ``--repeat``
times on a new file and the median is shown. Runtime is bounded: about 10 s with the defaults
on 2 cores.

Usage: uv run python scripts/bench/writer_throughput.py [--rows N] [--single-rows N] [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from better_ccflare.core import BillingType, RequestRecord, StreamTerminalState, TokenUsage
from better_ccflare.database import SecretKey, Store

PAYLOAD = '{"request":{"headers":{},"body":"' + "x" * 2000 + '"},"response":{"status":200}}'


@dataclass(frozen=True)
class Run:
    rows: int
    seconds: float
    transactions: int
    record_call_us: float


def make_record(index: int) -> RequestRecord:
    return RequestRecord(
        id=f"req-{index:08d}",
        timestamp_ms=1_767_225_600_000 + index,
        method="POST",
        path="/v1/messages",
        account_id=f"account-{index % 8}",
        status_code=200,
        success=True,
        response_time_ms=1200 + index % 500,
        model="claude-sonnet-4-5-20250929",
        usage=TokenUsage(
            input_tokens=1200,
            output_tokens=350,
            cache_read_input_tokens=48_000,
            cache_write_5m_input_tokens=900,
            cache_write_1h_input_tokens=100,
        ),
        cost_usd=0.0213,
        output_tokens_per_second=96.5,
        agent_used="code-reviewer",
        api_key_id="key-1",
        api_key_name="laptop",
        project="better-ccflare",
        billing_type=BillingType.PLAN,
        original_model="claude-sonnet-4-5",
        applied_model="claude-sonnet-4-5-20250929",
        stream_terminal_state=StreamTerminalState.COMPLETED,
        client_session_id="session-abc",
    )


# Each mode records the given rows and returns the seconds spent inside record() calls.
Mode = Callable[[Store, list[RequestRecord]], Awaitable[float]]


async def one_by_one(store: Store, records: list[RequestRecord]) -> float:
    spent = 0.0
    for record in records:
        started = time.perf_counter()
        store.requests.record(record)
        spent += time.perf_counter() - started
        await store.flush()
    return spent


async def batched(store: Store, records: list[RequestRecord]) -> float:
    started = time.perf_counter()
    for record in records:
        store.requests.record(record)
    spent = time.perf_counter() - started
    await store.flush()
    return spent


async def batched_with_payloads(store: Store, records: list[RequestRecord]) -> float:
    started = time.perf_counter()
    for record in records:
        store.requests.record(record)
        store.requests.record_payload(record.id, PAYLOAD)
    spent = time.perf_counter() - started
    await store.flush()
    return spent


async def concurrent_producers(store: Store, records: list[RequestRecord]) -> float:
    producers = 100
    spent = 0.0

    async def produce(mine: list[RequestRecord]) -> None:
        nonlocal spent
        for record in mine:
            started = time.perf_counter()
            store.requests.record(record)
            spent += time.perf_counter() - started
            await asyncio.sleep(0)

    await asyncio.gather(*(produce(records[first::producers]) for first in range(producers)))
    await store.flush()
    return spent


async def measure(mode: Mode, rows: int, directory: Path, name: str) -> Run:
    records = [make_record(index) for index in range(rows)]
    store = await Store.open(directory / f"{name}.db", key=SecretKey.generate())
    try:
        before = store.stats().transactions
        started = time.perf_counter()
        spent_in_record = await mode(store, records)
        seconds = time.perf_counter() - started
        transactions = store.stats().transactions - before
        assert await store.requests.count() == rows
    finally:
        await store.close()
    return Run(rows, seconds, transactions, spent_in_record / rows * 1e6)


async def main(rows: int, single_rows: int, repeat: int) -> None:
    modes: list[tuple[str, Mode, int]] = [
        ("one-by-one (one transaction per row)", one_by_one, single_rows),
        ("batched (record, one flush at the end)", batched, rows),
        ("batched + 2 KB payload per row", batched_with_payloads, rows),
        ("100 concurrent producers", concurrent_producers, rows),
    ]
    print(
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; "
        f"median of {repeat} runs, each on a new file"
    )
    print()
    print(f"| {'mode':<40} | {'rows':>6} | {'transactions':>12} | {'rows/s':>8} | record() µs |")
    print(f"|{'-' * 42}|{'-' * 7}:|{'-' * 13}:|{'-' * 9}:|{'-' * 12}:|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, mode, count in modes:
            runs = [
                await measure(mode, count, Path(tmp), f"{mode.__name__}-{attempt}")
                for attempt in range(repeat)
            ]
            seconds = statistics.median(run.seconds for run in runs)
            transactions = statistics.median(run.transactions for run in runs)
            record_us = statistics.median(run.record_call_us for run in runs)
            print(
                f"| {label:<40} | {count:>6} | {transactions:>12.0f} | "
                f"{count / seconds:>8,.0f} | {record_us:>11.1f} |"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Recording throughput of the database writer.")
    parser.add_argument("--rows", type=int, default=10_000, help="rows for the batched modes")
    parser.add_argument("--single-rows", type=int, default=2_000, help="rows for one-by-one")
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (median shown)")
    arguments = parser.parse_args()
    started = time.perf_counter()
    asyncio.run(main(arguments.rows, arguments.single_rows, arguments.repeat))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
