"""The SQLite writer: the shared write queue, with its batches run on the writer thread.

A batch is one ``BEGIN IMMEDIATE`` transaction on the thread that owns the only write
connection; each queued write is a function of that connection or a :class:`Statement` (a
request row). Consecutive statements of the same SQL run as one ``executemany``: a busy proxy's
batch of request rows is one call instead of a Python call and a statement lookup per row.
Order is kept exactly (the payloads' foreign key is checked at once here). A batch that fails is
retried write by write, except when another process held the lock past the busy timeout (each
retry would only wait it out again).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar, cast

from sqlite_utils import Database

from better_ccflare.database._write_queue import (
    LINGER_S,
    Outcome,
    QueuedWrite,
    Statement,
    WriteQueue,
)

from ._connection import ConnectionThread, immediate_transaction

__all__ = ["LINGER_S", "Writer"]

_T = TypeVar("_T")
_Write = Callable[[Database], object] | Statement
_LOCKED_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


class Writer(WriteQueue[_Write]):
    """Owns the write connection's thread and the queue in front of it."""

    __slots__ = ("_thread",)

    def __init__(self, thread: ConnectionThread, *, payload_budget_bytes: int) -> None:
        super().__init__(
            self._run_batch, nothing=_nothing, payload_budget_bytes=payload_budget_bytes
        )
        self._thread = thread

    async def submit(
        self, fn: Callable[[Database], _T], *, label: str, transactional: bool = True
    ) -> _T:
        """Queue ``fn(db)`` and return its result once its transaction has committed.

        ``transactional=False`` runs ``fn`` alone and outside any transaction (``VACUUM`` needs
        that). If the caller is cancelled while waiting, the write still happens.
        """
        return cast("_T", await self.submit_write(fn, label=label, transactional=transactional))

    async def _run_batch(
        self, batch: Sequence[QueuedWrite[_Write]]
    ) -> tuple[Sequence[Outcome], int]:
        return await self._thread.run(partial(_execute, batch=batch))


def _nothing(_db: Database) -> None:
    return None


def _execute(db: Database, batch: Sequence[QueuedWrite[_Write]]) -> tuple[list[Outcome], int]:
    """Run a batch on the writer thread; returns each op's outcome and the commits made."""
    if not batch[0].transactional:
        return [_attempt(db, batch[0], transactional=False)], 0
    try:
        with immediate_transaction(db):
            values = _run_all(db, batch)
    except Exception as exc:
        # One by one would only wait out the busy timeout again for every op.
        if len(batch) == 1 or _is_locked(exc):
            return [Outcome(error=exc)] * len(batch), 0
        outcomes = [_attempt(db, op, transactional=True) for op in batch]
        return outcomes, sum(outcome.error is None for outcome in outcomes)
    return [_DONE if value is None else Outcome(value=value) for value in values], 1


_DONE = Outcome()
"""The outcome of every write that returned nothing (most of them): shared, not built per row."""


def _run_all(db: Database, batch: Sequence[QueuedWrite[_Write]]) -> list[object]:
    """Run every write of ``batch`` in order (inside the caller's transaction); their values."""
    values: list[object] = [None] * len(batch)
    rows: list[tuple[object, ...]] = []
    sql = ""
    for index, op in enumerate(batch):
        write = op.fn
        if isinstance(write, Statement):
            if write.sql != sql and rows:
                db.conn.executemany(sql, rows)
                rows = []
            sql = write.sql
            rows.append(write.args)
            continue
        if rows:
            db.conn.executemany(sql, rows)
            rows = []
        values[index] = write(db)
    if rows:
        db.conn.executemany(sql, rows)
    return values


def _run_one(db: Database, write: _Write) -> object:
    if isinstance(write, Statement):
        db.conn.execute(write.sql, write.args)
        return None
    return write(db)


def _is_locked(exc: Exception) -> bool:
    """True when another connection kept the database locked past the busy timeout."""
    return isinstance(exc, sqlite3.Error) and exc.sqlite_errorcode in _LOCKED_CODES


def _attempt(db: Database, op: QueuedWrite[_Write], *, transactional: bool) -> Outcome:
    try:
        if not transactional:
            return Outcome(value=_run_one(db, op.fn))
        with immediate_transaction(db):
            return Outcome(value=_run_one(db, op.fn))
    except Exception as exc:
        return Outcome(error=exc)
