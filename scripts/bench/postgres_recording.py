"""Recording request rows into PostgreSQL: which driver, and which way of writing a batch.

The proxy records one ``requests`` row per request, fire-and-forget; a writer task commits what
is queued as one transaction. This measures that transaction with each candidate driver and
each way of sending a batch, on the real schema (migration 0001, with its indexes) and the real
row (30 columns, the upsert that completes an earlier record of the same request):

- psycopg 3 (``psycopg[binary]``): ``pipeline`` (one ``execute`` per row inside pipeline mode,
  what a writer running each queued operation in turn sends), ``executemany``, ``multi-row``
  (one ``INSERT ... VALUES (...), (...)`` per batch) and ``copy`` (``COPY`` into a temporary
  table, then one ``INSERT ... SELECT ... ON CONFLICT``);
- asyncpg: ``executemany``, ``multi-row`` and ``copy`` (``copy_records_to_table``).

For batches of 1, 10, 100 and 500 rows it reports rows per second (wall clock, one connection,
batches back to back) and the CPU time of this client process per row: the cost the proxy's
process pays, which is what the choice is about (the server's CPU is the same SQL either way).
Each cell is the median of ``--repeat`` runs; each run starts from an empty table.

It creates a scratch database on the server (``--url``, else ``BETTER_CCFLARE_TEST_DATABASE_URL``,
else ``postgresql://postgres@127.0.0.1:5432/postgres``) and drops it at the end. Two to four
minutes: batches of one row wait for a commit (an fsync) each.

Usage: uv run python scripts/bench/postgres_recording.py [--url URL] [--rows N] [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import LiteralString, cast
from urllib.parse import urlsplit

import asyncpg
import psycopg
from psycopg import sql
from writer_throughput import make_record  # the same row as the SQLite writer benchmark

from better_ccflare.database._postgres._schema import SCHEMA
from better_ccflare.database._rows import REQUEST_COLUMNS, request_upsert_sql, request_values

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BATCH_SIZES = (1, 10, 100, 500)
Row = tuple[object, ...]

UPSERT_NUMBERED = request_upsert_sql("numeric")
UPSERT = cast("LiteralString", re.sub(r"\$\d+", "%s", UPSERT_NUMBERED))
"""The store's upsert, with psycopg's placeholders."""
_UPDATES = UPSERT[UPSERT.index(" ON CONFLICT") :]
COLUMNS = ", ".join(REQUEST_COLUMNS)
STAGE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS requests_stage ON COMMIT DELETE ROWS AS "
    f"SELECT {COLUMNS} FROM requests WITH NO DATA"
)
FROM_STAGE = f"INSERT INTO requests ({COLUMNS}) SELECT {COLUMNS} FROM requests_stage{_UPDATES}"


def multi_row_sql(rows: int, numbered: bool) -> str:
    """``INSERT ... VALUES (...), ... ON CONFLICT ...`` for ``rows`` rows."""
    width = len(REQUEST_COLUMNS)
    groups = [
        "("
        + ", ".join(f"${row * width + column + 1}" if numbered else "%s" for column in range(width))
        + ")"
        for row in range(rows)
    ]
    return f"INSERT INTO requests ({COLUMNS}) VALUES {', '.join(groups)}{_UPDATES}"


# One way of writing a batch: given an open connection and the batch, commit it.
PsycopgMethod = Callable[
    [psycopg.AsyncConnection[tuple[object, ...]], Sequence[Row]], Awaitable[None]
]
AsyncpgMethod = Callable[[asyncpg.Connection, Sequence[Row]], Awaitable[None]]


async def psycopg_pipeline(
    conn: psycopg.AsyncConnection[tuple[object, ...]], batch: Sequence[Row]
) -> None:
    async with conn.pipeline(), conn.transaction(), conn.cursor() as cursor:
        for row in batch:
            await cursor.execute(UPSERT, row)


async def psycopg_executemany(
    conn: psycopg.AsyncConnection[tuple[object, ...]], batch: Sequence[Row]
) -> None:
    async with conn.transaction(), conn.cursor() as cursor:
        await cursor.executemany(UPSERT, batch)


async def psycopg_multi_row(
    conn: psycopg.AsyncConnection[tuple[object, ...]], batch: Sequence[Row]
) -> None:
    flat = [value for row in batch for value in row]
    async with conn.transaction():
        await conn.execute(cast("LiteralString", multi_row_sql(len(batch), numbered=False)), flat)


async def psycopg_copy(
    conn: psycopg.AsyncConnection[tuple[object, ...]], batch: Sequence[Row]
) -> None:
    async with conn.transaction(), conn.cursor() as cursor:
        await cursor.execute(STAGE)
        async with cursor.copy(f"COPY requests_stage ({COLUMNS}) FROM STDIN") as copy:
            for row in batch:
                await copy.write_row(row)
        await cursor.execute(FROM_STAGE)


async def asyncpg_executemany(conn: asyncpg.Connection, batch: Sequence[Row]) -> None:
    async with conn.transaction():
        await conn.executemany(UPSERT_NUMBERED, batch)


async def asyncpg_multi_row(conn: asyncpg.Connection, batch: Sequence[Row]) -> None:
    flat = [value for row in batch for value in row]
    async with conn.transaction():
        await conn.execute(multi_row_sql(len(batch), numbered=True), *flat)


async def asyncpg_copy(conn: asyncpg.Connection, batch: Sequence[Row]) -> None:
    async with conn.transaction():
        await conn.execute(STAGE)
        await conn.copy_records_to_table("requests_stage", records=batch, columns=REQUEST_COLUMNS)
        await conn.execute(FROM_STAGE)


@dataclass(frozen=True)
class Result:
    rows_per_second: float
    cpu_us_per_row: float


async def timed(
    write: Callable[[Sequence[Row]], Awaitable[None]], rows: list[Row], batch_size: int
) -> Result:
    batches = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        await write(batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Result(len(rows) / wall, cpu / len(rows) * 1e6)


async def measure_psycopg(
    url: str, method: PsycopgMethod, rows: list[Row], batch_size: int
) -> Result:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("TRUNCATE requests CASCADE")
        return await timed(lambda batch: method(conn, batch), rows, batch_size)


async def measure_asyncpg(
    url: str, method: AsyncpgMethod, rows: list[Row], batch_size: int
) -> Result:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE requests CASCADE")
        return await timed(lambda batch: method(conn, batch), rows, batch_size)
    finally:
        await conn.close()


async def main(url: str, total_rows: int, repeat: int) -> None:
    scratch = f"better_ccflare_bench_{os.getpid()}"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        server = (await (await admin.execute("SHOW server_version")).fetchone() or ("?",))[0]
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    scratch_url = urlsplit(url)._replace(path=f"/{scratch}").geturl()
    try:
        async with await psycopg.AsyncConnection.connect(scratch_url, autocommit=True) as conn:
            for statement in SCHEMA:
                await conn.execute(cast("LiteralString", statement))
        methods: list[tuple[str, Callable[[list[Row], int], Awaitable[Result]]]] = [
            *(
                (f"psycopg {name}", partial(measure_psycopg, scratch_url, method))
                for name, method in (
                    ("pipeline", psycopg_pipeline),
                    ("executemany", psycopg_executemany),
                    ("multi-row", psycopg_multi_row),
                    ("copy", psycopg_copy),
                )
            ),
            *(
                (f"asyncpg {name}", partial(measure_asyncpg, scratch_url, method))
                for name, method in (
                    ("executemany", asyncpg_executemany),
                    ("multi-row", asyncpg_multi_row),
                    ("copy", asyncpg_copy),
                )
            ),
        ]
        print(
            f"Python {platform.python_version()}, PostgreSQL {server} on loopback, "
            f"psycopg {psycopg.__version__}, asyncpg {asyncpg.__version__}, "
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs; "
            f"{total_rows} rows per cell (a tenth for batches of 1), median of {repeat} runs"
        )
        print()
        header = " | ".join(f"batch {size}" for size in BATCH_SIZES)
        print(f"| driver, method | {header} |")
        print("|---|" + "---:|" * len(BATCH_SIZES))
        print("(each cell: rows/s, client CPU µs per row)")
        for label, measure in methods:
            cells: list[str] = []
            for size in BATCH_SIZES:
                count = total_rows // 10 if size == 1 else total_rows
                rows = [request_values(make_record(index)) for index in range(count)]
                results = [await measure(rows, size) for _ in range(repeat)]
                speed = statistics.median(result.rows_per_second for result in results)
                cpu = statistics.median(result.cpu_us_per_row for result in results)
                cells.append(f"{speed:,.0f} / {cpu:.0f} µs")
            print(f"| {label} | {' | '.join(cells)} |")
    finally:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            await admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch))
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="PostgreSQL recording: drivers and batch methods.")
    parser.add_argument(
        "--url", default=os.environ.get("BETTER_CCFLARE_TEST_DATABASE_URL", DEFAULT_URL)
    )
    parser.add_argument("--rows", type=int, default=5_000, help="rows per cell")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (median shown)")
    arguments = parser.parse_args()
    started = time.perf_counter()
    asyncio.run(main(arguments.url, arguments.rows, arguments.repeat))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
