"""Analytics query latency on a large request history.

Fills a SQLite file with ``--rows`` synthetic requests spread evenly over ``--days`` days (8
accounts, 2 % unattributed; 5 models; 4 API keys; 5 % failures; plan and API billing; client
sessions of about 200 requests), written through the public store API the way the proxy records
them. It rolls the history up as the server's refresh job would have just before the newest
request's hour ended (so that hour, ~1,400 rows of a million, is still read raw), and times that,
and recomputing one hour after a change. Then it times every ``store.analytics`` method, through
the store (so the hop to the reader thread is included), for the dashboard's ranges
1h/6h/24h/7d/30d with their bucket sizes 1m/5m/1h/1h/1d. Each range is asked without a filter,
for one account, for two accounts plus unattributed requests, and for one model's failures; it
ends at the newest request. The request list (first and second page) and the error groups are
also timed without a range, as the request list API asks for them. Each cell is the median of
``--repeat`` runs, in milliseconds.

Filling a million rows takes a few minutes; ``--db PATH`` keeps the file and reuses it when it
already holds ``--rows`` rows (opening a file from before the rollups migrates it, and the time
that takes is printed). ``--quick`` (5,000 rows, one run) is a smoke test for CI.

Usage: uv run python scripts/bench/analytics_queries.py [--rows N] [--days N] [--repeat N]
       [--db PATH] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from better_ccflare.core import BillingType, RequestRecord, StreamTerminalState, TokenUsage
from better_ccflare.database import RequestFilter, SecretKey, Store

END_MS = 1_767_225_600_000
"""The newest request (2026-01-01T00:00:00Z); every range ends here."""
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
RANGES = (
    ("1h", HOUR_MS, MINUTE_MS),
    ("6h", 6 * HOUR_MS, 5 * MINUTE_MS),
    ("24h", DAY_MS, HOUR_MS),
    ("7d", 7 * DAY_MS, HOUR_MS),
    ("30d", 30 * DAY_MS, DAY_MS),
)
ACCOUNTS = [f"account-{n}" for n in range(8)]
ACCOUNT_WEIGHTS = [30, 20, 15, 10, 10, 5, 5, 3]
MODELS = [
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-1-20250805",
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-20250514",
    "claude-3-5-haiku-20241022",
]
MODEL_WEIGHTS = [50, 20, 20, 7, 3]
API_KEYS = ["key-laptop", "key-ci", "key-server", "key-agent"]
ERRORS = [
    (429, "Rate limited by upstream"),
    (500, "Internal server error"),
    (529, "Overloaded"),
    (None, "Upstream connection reset"),
]
SESSION_LENGTH = 200
FILTERS = (
    ("-", RequestFilter()),
    ("account", RequestFilter(account_ids=("account-1",))),
    ("2 accounts + none", RequestFilter(account_ids=("account-1", "account-7", None))),
    ("model, errors", RequestFilter(models=(MODELS[0],), status="error")),
)


def make_record(index: int, rows: int, span_ms: int, rng: random.Random) -> RequestRecord:
    account = rng.choices(ACCOUNTS, ACCOUNT_WEIGHTS)[0] if rng.random() >= 0.02 else None
    success = account is not None and rng.random() >= 0.05
    status_code, error = (200, None) if success else rng.choice(ERRORS)
    output = rng.randint(20, 4000) if success else 0
    return RequestRecord(
        id=f"req-{index:09d}",
        timestamp_ms=END_MS - span_ms + (index * span_ms) // rows,
        method="POST",
        path="/v1/messages",
        account_id=account,
        status_code=status_code,
        success=success,
        error_message=error,
        response_time_ms=rng.randint(300, 60_000),
        model=rng.choices(MODELS, MODEL_WEIGHTS)[0],
        usage=TokenUsage(
            input_tokens=rng.randint(1, 5000),
            output_tokens=output,
            cache_read_input_tokens=rng.randint(0, 120_000),
            cache_write_5m_input_tokens=rng.randint(0, 4000),
            cache_write_1h_input_tokens=rng.choice((0, 0, 0, 2000)),
        ),
        cost_usd=round(rng.uniform(0.0001, 0.5), 6),
        output_tokens_per_second=rng.uniform(20, 150) if success else None,
        api_key_id=rng.choice(API_KEYS) if rng.random() >= 0.1 else None,
        billing_type=BillingType.PLAN if account in ACCOUNTS[:5] else BillingType.API,
        stream_terminal_state=StreamTerminalState.COMPLETED if success else None,
        client_session_id=f"session-{index // SESSION_LENGTH}",
    )


async def fill(store: Store, rows: int, days: int) -> float:
    """Record ``rows`` requests; returns the seconds it took."""
    rng = random.Random(20260101)
    started = time.perf_counter()
    for index in range(rows):
        store.requests.record(make_record(index, rows, days * DAY_MS, rng))
        if index % 20_000 == 19_999:  # bound the queue's memory
            await store.flush()
    await store.flush()
    return time.perf_counter() - started


async def median_ms(call: Callable[[], Awaitable[object]], repeat: int) -> float:
    times: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def queries(
    store: Store, where: RequestFilter, bucket_ms: int
) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
    analytics = store.analytics
    return [
        ("totals", lambda: analytics.totals(where)),
        ("time_series", lambda: analytics.time_series(where, bucket_ms)),
        ("time_series by_model", lambda: analytics.time_series(where, bucket_ms, by_model=True)),
        ("group_by model", lambda: analytics.group_by(where, "model")),
        ("group_by account", lambda: analytics.group_by(where, "account")),
        ("group_by api_key", lambda: analytics.group_by(where, "api_key")),
        ("group_by account_model", lambda: analytics.group_by(where, "account_model")),
        ("recent_errors 10", lambda: analytics.recent_errors(where, 10)),
        ("requests 50", lambda: analytics.requests(where, 50)),
    ]


async def unranged(store: Store, where: RequestFilter) -> list[Callable[[], Awaitable[object]]]:
    """The request list (first and second page) and the error groups, over all history."""
    analytics = store.analytics
    before = (await analytics.requests(where, 50))[-1].timestamp_ms
    return [
        lambda: analytics.requests(where, 50),
        lambda: analytics.requests(where, 50, before_ms=before),
        lambda: analytics.recent_errors(where, 10),
    ]


async def roll_up(store: Store, rows: int, days: int) -> None:
    """Refresh the rollups as of the newest request, then after rewriting one request."""
    started = time.perf_counter()
    hours = await store.analytics.refresh_rollups(END_MS - 1)
    print(f"refresh_rollups: {hours} hours in {time.perf_counter() - started:.2f} s")
    index = rows // 2
    store.requests.record(make_record(index, rows, days * DAY_MS, random.Random(index)))
    await store.flush()
    started = time.perf_counter()
    hours = await store.analytics.refresh_rollups(END_MS - 1)
    print(f"refresh_rollups after a change: {hours} hours in {time.perf_counter() - started:.3f} s")


async def run(db_path: Path, rows: int, days: int, repeat: int) -> None:
    started = time.perf_counter()
    async with await Store.open(db_path, key=SecretKey.generate()) as store:
        print(f"opened (and migrated if needed) in {time.perf_counter() - started:.1f} s")
        existing = await store.requests.count()
        if existing not in (0, rows):
            raise SystemExit(f"{db_path} holds {existing} requests, not {rows}; use another --db")
        if existing == 0:
            seconds = await fill(store, rows, days)
            print(f"filled {rows:,} rows in {seconds:.0f} s ({rows / seconds:,.0f} rows/s)")
        await roll_up(store, rows, days)
        size_mb = sum(path.stat().st_size for path in db_path.parent.glob(db_path.name + "*")) / (
            1024 * 1024
        )
        print(
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; {rows:,} requests "
            f"over {days} days ({size_mb:,.0f} MB); median of {repeat} runs, ms"
        )
        print()
        print("| query | filter | " + " | ".join(name for name, _, _ in RANGES) + " |")
        print("|---|---|" + "---:|" * len(RANGES))
        for filter_name, base in FILTERS:
            cells: dict[str, list[float]] = {}
            for _, range_ms, bucket_ms in RANGES:
                where = RequestFilter(
                    since_ms=END_MS - range_ms,
                    until_ms=END_MS,
                    account_ids=base.account_ids,
                    models=base.models,
                    status=base.status,
                )
                for name, call in queries(store, where, bucket_ms):
                    cells.setdefault(name, []).append(await median_ms(call, repeat))
            for name, values in cells.items():
                row = " | ".join(f"{value:.1f}" for value in values)
                print(f"| {name} | {filter_name} | {row} |")
        print("\nWithout a time range:\n")
        print("| filter | requests 50 | requests 50, page 2 | recent_errors 10 |")
        print("|---|---:|---:|---:|")
        for filter_name, where in FILTERS:
            timings = [await median_ms(call, repeat) for call in await unranged(store, where)]
            row = " | ".join(f"{timing:.1f}" for timing in timings)
            print(f"| {filter_name} | {row} |")
        session = f"session-{rows // SESSION_LENGTH // 2}"
        analytics = store.analytics
        lookup = await median_ms(lambda: analytics.latest_account_for_session(session), repeat)
        print(f"\nlatest_account_for_session: {lookup:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description="Analytics query latency on a large history.")
    parser.add_argument("--rows", type=int, default=1_000_000, help="requests in the database")
    parser.add_argument("--days", type=int, default=30, help="days the requests span")
    parser.add_argument("--repeat", type=int, default=5, help="runs per cell (median shown)")
    parser.add_argument("--db", type=Path, help="keep the database here (reused if it fits)")
    parser.add_argument("--quick", action="store_true", help="5,000 rows, one run (CI smoke)")
    arguments = parser.parse_args()
    rows, repeat = (5_000, 1) if arguments.quick else (arguments.rows, arguments.repeat)
    started = time.perf_counter()
    if arguments.db is not None:
        asyncio.run(run(arguments.db, rows, arguments.days, repeat))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(run(Path(tmp) / "analytics.db", rows, arguments.days, repeat))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
