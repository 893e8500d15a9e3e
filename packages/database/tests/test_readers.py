"""Reads run on a pool of reader threads, so one slow read does not hold up the others."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

from sqlite_utils import Database

from better_ccflare.database import Store
from better_ccflare.database._sqlite._connection import ConnectionPool, open_reader

from .builders import request


def select(value: int) -> Callable[[Database], object]:
    def run(db: Database) -> object:
        return db.conn.execute("SELECT ?", (value,)).fetchone()[0]

    return run


async def test_a_read_does_not_wait_for_a_slow_one(store: Store, db_path: Path) -> None:
    readers = ConnectionPool("test-reader", lambda: open_reader(db_path), size=2)
    started, release = threading.Event(), threading.Event()

    def slow(db: Database) -> object:
        started.set()
        release.wait(timeout=10)
        return select(1)(db)

    try:
        slow_read = asyncio.ensure_future(readers.run(slow))
        await asyncio.to_thread(started.wait, 10)

        fast = await asyncio.wait_for(readers.run(select(2)), timeout=5)

        assert (fast, slow_read.done()) == (2, False)
        release.set()
        assert await slow_read == 1
    finally:
        release.set()
        await readers.close()


async def test_reads_on_either_reader_see_every_committed_write(store: Store) -> None:
    for number in range(20):
        store.requests.record(request(f"r{number}"))
        await store.flush()

        counts = await asyncio.gather(store.requests.count(), store.requests.count())

        assert counts == [number + 1, number + 1]
