"""The single batching writer: grouping, isolation of failures, the payload budget, shutdown."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from better_ccflare.database import SecretKey, Store, StoreClosedError
from better_ccflare.database._sqlite._connection import ConnectionThread, open_reader, open_writer
from better_ccflare.database._sqlite._writer import LINGER_S, Writer

from .builders import request
from .tracing import SqlTrace
from .waiting import eventually, holds


async def test_many_queued_records_are_written_in_few_transactions(store: Store) -> None:
    before = store.stats().transactions

    for i in range(1200):
        store.requests.record(request(f"r{i}"))
    await store.flush()

    # 500 + 500 + 200 operations (the flush marker joins the last batch).
    assert store.stats().transactions - before == 3
    assert await store.requests.count() == 1200


async def test_a_write_to_an_idle_writer_waits_for_nothing(store: Store) -> None:
    before = store.stats().transactions

    for i in range(3):
        store.requests.record(request(f"r{i}"))
        await store.flush()

    assert store.stats().transactions - before == 3


async def test_queued_records_linger_to_share_one_transaction(store: Store) -> None:
    before = store.stats().transactions

    for i in range(5):
        store.requests.record(request(f"r{i}"))
        await asyncio.sleep(0)  # requests finish one by one, the loop runs in between
    assert store.stats().queued_ops == 5  # nothing started a transaction yet

    # Not flushed: the linger alone starts the batch. It is the first record, so the writer
    # process starts first (a Python start-up: up to a few hundred ms on a loaded machine).
    await eventually(holds(lambda: store.stats().queued_ops == 0))

    assert store.stats().transactions - before == 1
    assert await store.requests.count() == 5


async def test_a_write_somebody_waits_for_takes_lingering_records_along_at_once(
    writer: Writer,
) -> None:
    for x in range(3):
        writer.enqueue(lambda db, x=x: db.conn.execute("INSERT INTO t VALUES (?)", (x,)), label="q")
    before = writer.stats().transactions

    async with asyncio.timeout(LINGER_S / 2):
        await writer.flush()

    assert writer.stats().transactions - before == 1
    assert writer.stats().queued_ops == 0


async def test_closing_writes_everything_still_queued(db_path: Path, key: SecretKey) -> None:
    store = await Store.open(db_path, key=key)
    for i in range(2000):
        store.requests.record(request(f"r{i}"))
    assert store.stats().queued_ops == 2000

    await store.close()

    async with await Store.open(db_path, key=key) as reopened:
        assert await reopened.requests.count() == 2000


@pytest.mark.sqlite_only  # the message is SQLite's; test_postgres.py checks PostgreSQL's
async def test_a_failing_queued_write_is_logged_and_spares_the_rest_of_its_batch(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(3):
        store.requests.record(request(f"before-{i}"))
    store.requests.record_payload("no-such-request", "{}")  # breaks the foreign key
    for i in range(3):
        store.requests.record(request(f"after-{i}"))

    with caplog.at_level(logging.ERROR, logger="better_ccflare.database"):
        await store.flush()

    assert await store.requests.count() == 6
    assert store.stats().ops_failed == 1
    assert "requests.record_payload(no-such-request)" in caplog.text
    assert "FOREIGN KEY" in caplog.text


async def test_payloads_over_the_budget_are_dropped_and_counted(
    db_path: Path, key: SecretKey
) -> None:
    async with await Store.open(db_path, key=key, payload_budget_bytes=1000) as store:
        for i in range(3):
            store.requests.record(request(f"r{i}"))

        accepted = [store.requests.record_payload(f"r{i}", "x" * 400) for i in range(3)]

        assert accepted == [True, True, False]
        assert store.stats().payloads_dropped == 1
        assert store.stats().queued_payload_bytes == 800
        await store.flush()
        assert store.stats().queued_payload_bytes == 0
        assert store.requests.record_payload("r2", "y" * 400)
        await store.flush()
        assert await store.requests.get_payload("r2") == "y" * 400
        assert await store.requests.count() == 3


async def test_a_closed_store_refuses_reads_and_writes(db_path: Path, key: SecretKey) -> None:
    store = await Store.open(db_path, key=key)
    await store.close()

    with pytest.raises(StoreClosedError):
        store.requests.record(request())
    with pytest.raises(StoreClosedError):
        await store.accounts.list_all()
    await store.close()  # closing twice is harmless


async def test_sql_runs_only_on_the_writer_and_reader_threads(
    store: Store, sql_trace: SqlTrace
) -> None:
    store.requests.record(request())
    await store.flush()
    await store.requests.list_recent(10)

    thread_names = {name.rsplit("_", 1)[0] for name, _ in sql_trace.statements}
    assert thread_names <= {
        "better-ccflare-db-writer",
        "better-ccflare-db-reader-0",
        "better-ccflare-db-reader-1",
    }
    assert "better-ccflare-db-writer" in thread_names
    assert len(thread_names) == 2  # and one of the readers


# The writer on its own, with operations the repositories never produce.


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[Writer]:
    thread = ConnectionThread("test-writer", lambda: open_writer(tmp_path / "w.db"))
    started = Writer(thread, payload_budget_bytes=1_000_000, process=None, data_version=0)
    started.start()
    await started.submit(lambda db: db.conn.execute("CREATE TABLE t (x INTEGER)"), label="ddl")
    yield started
    await started.close()
    await thread.close()


def fail(_db: Database) -> None:
    raise RuntimeError("this write fails")


async def test_a_failed_submitted_write_raises_to_its_caller_only(writer: Writer) -> None:
    results = await asyncio.gather(
        writer.submit(lambda db: db.conn.execute("INSERT INTO t VALUES (1)").rowcount, label="1"),
        writer.submit(fail, label="boom"),
        writer.submit(lambda db: db.conn.execute("INSERT INTO t VALUES (2)").rowcount, label="2"),
        return_exceptions=True,
    )

    assert results[0] == 1
    assert results[2] == 1
    assert isinstance(results[1], RuntimeError)
    rows = await writer.submit(lambda db: db.conn.execute("SELECT x FROM t").fetchall(), label="r")
    assert [row[0] for row in rows] == [1, 2]


async def test_reads_do_not_wait_for_a_busy_writer(writer: Writer, tmp_path: Path) -> None:
    reader = ConnectionThread("test-reader", lambda: open_reader(tmp_path / "w.db"))
    release = threading.Event()
    await writer.submit(lambda db: db.conn.execute("INSERT INTO t VALUES (7)"), label="seed")
    blocked = asyncio.ensure_future(
        writer.submit(lambda _db: release.wait(timeout=10), label="slow")
    )
    try:
        await asyncio.sleep(0.05)
        rows = await asyncio.wait_for(
            reader.run(lambda db: db.conn.execute("SELECT x FROM t").fetchall()), timeout=5
        )
        assert not blocked.done()
        assert [row[0] for row in rows] == [7]
    finally:
        release.set()
        await blocked
        await reader.close()


async def test_a_batch_blocked_by_another_process_fails_once_not_op_by_op(
    tmp_path: Path, sql_trace: SqlTrace
) -> None:
    path = tmp_path / "locked.db"

    def impatient_writer() -> Database:
        db = open_writer(path)
        db.conn.execute("PRAGMA busy_timeout=50")
        return db

    thread = ConnectionThread("impatient-writer", impatient_writer)
    writer = Writer(thread, payload_budget_bytes=1_000_000, process=None, data_version=0)
    writer.start()
    await writer.submit(lambda db: db.conn.execute("CREATE TABLE t (x INTEGER)"), label="ddl")
    holder = ConnectionThread("lock-holder", lambda: Database(path))
    await holder.run(lambda db: db.conn.execute("BEGIN IMMEDIATE"))
    try:
        begins_before = sum(1 for _, sql in sql_trace.statements if sql == "BEGIN IMMEDIATE")
        results = await asyncio.gather(
            *(writer.submit(lambda _db: None, label=str(i)) for i in range(3)),
            return_exceptions=True,
        )
        begins = sum(1 for _, sql in sql_trace.statements if sql == "BEGIN IMMEDIATE")
    finally:
        await holder.run(lambda db: db.conn.execute("ROLLBACK"))
        await holder.close()
        await writer.close()
        await thread.close()

    assert all(isinstance(result, sqlite3.OperationalError) for result in results)
    assert begins - begins_before == 1


class WriterBug(BaseException):
    """Stands for a defect that escapes the writer's own error handling."""


def crash(_db: Database) -> None:
    raise WriterBug


async def test_a_crashed_writer_fails_waiting_callers_and_refuses_new_writes(
    writer: Writer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.CRITICAL, logger="better_ccflare.database"):
        results = await asyncio.gather(
            writer.submit(crash, label="crash"),
            writer.submit(lambda _db: None, label="bystander"),
            return_exceptions=True,
        )

    assert all(isinstance(result, StoreClosedError) for result in results)
    assert "stopped unexpectedly" in caplog.text
    with pytest.raises(StoreClosedError):
        writer.enqueue(lambda _db: None, label="late")
