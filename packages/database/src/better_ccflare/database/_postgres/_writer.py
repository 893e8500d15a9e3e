"""The PostgreSQL writer: the shared write queue, with its batches run as one transaction each.

A queued write is either a :class:`Statement` (the fire-and-forget writes of the request hot
path: a request row, a payload, an account's or key's use) or a function of the connection (a
write somebody waits for, whose result may matter, such as the token compare-and-swap). A batch
runs in one transaction on one pooled connection; between two functions, its statements are
grouped by SQL and each group is sent with ``executemany``, :data:`CHUNK` rows at a time, so a
batch of a hundred proxied requests is a handful of round trips (``executemany`` measured
cheapest per row at these batch sizes: docs/performance.md, "PostgreSQL recording"), and none of
them holds the event loop for long. Grouping reorders statements of different
SQL only; they touch different tables or columns, and the payloads' foreign key is checked at
commit (``DEFERRABLE INITIALLY DEFERRED``), so a payload grouped ahead of its request row is
fine. If the transaction fails, the writes are retried one by one, so one bad write does not
take the others down with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, cast

from asyncpg import Pool

from better_ccflare.database._write_queue import Outcome, QueuedWrite, Statement, WriteQueue

from ._connection import Connection

__all__ = ["CHUNK", "Statement", "Writer"]

_T = TypeVar("_T")

CHUNK = 16
"""Rows per ``executemany``. asyncpg encodes a call's rows in one go on the event loop, about
8 µs a request row, and requests wait meanwhile: batches sent whole put 2 ms into the p99 of one
request at a time; in calls of 16 a step holds the loop about a quarter of a millisecond
(docs/performance.md, "PostgreSQL's tail")."""


_Write = Callable[[Connection], Awaitable[object]] | Statement


class Writer(WriteQueue[_Write]):
    """The queue in front of the pool; each batch borrows one connection."""

    __slots__ = ("_pool",)

    def __init__(self, pool: Pool, *, payload_budget_bytes: int) -> None:
        super().__init__(
            self._run_batch, nothing=_nothing, payload_budget_bytes=payload_budget_bytes
        )
        self._pool = pool

    async def submit(
        self,
        fn: Callable[[Connection], Awaitable[_T]],
        *,
        label: str,
        transactional: bool = True,
    ) -> _T:
        """Queue ``fn(connection)`` and return its result once its transaction has committed.

        ``transactional=False`` runs ``fn`` alone and outside any transaction (``VACUUM`` needs
        that). If the caller is cancelled while waiting, the write still happens.
        """
        return cast("_T", await self.submit_write(fn, label=label, transactional=transactional))

    async def _run_batch(
        self, batch: Sequence[QueuedWrite[_Write]]
    ) -> tuple[Sequence[Outcome], int]:
        async with self._pool.acquire() as connection:
            if not batch[0].transactional:
                return [await _attempt(connection, batch[0], transactional=False)], 0
            try:
                async with connection.transaction():
                    values = await _run_all(connection, batch)
            except Exception as exc:
                if len(batch) == 1 or connection.is_closed():
                    return [Outcome(error=exc)] * len(batch), 0
                outcomes = [await _attempt(connection, op, transactional=True) for op in batch]
                return outcomes, sum(outcome.error is None for outcome in outcomes)
            return [Outcome(value=value) for value in values], 1


async def _nothing(_connection: Connection) -> None:
    return None


async def _run_all(connection: Connection, batch: Sequence[QueuedWrite[_Write]]) -> list[object]:
    """Run every write of ``batch`` (inside the caller's transaction); their values in order."""
    values: list[object] = [None] * len(batch)
    grouped: dict[str, list[tuple[object, ...]]] = {}
    for index, op in enumerate(batch):
        if isinstance(op.fn, Statement):
            grouped.setdefault(op.fn.sql, []).append(op.fn.args)
            continue
        await _send(connection, grouped)
        values[index] = await op.fn(connection)
    await _send(connection, grouped)
    return values


async def _send(connection: Connection, grouped: dict[str, list[tuple[object, ...]]]) -> None:
    for sql, rows in grouped.items():
        for start in range(0, len(rows), CHUNK):
            await connection.executemany(sql, rows[start : start + CHUNK])
    grouped.clear()


async def _attempt(
    connection: Connection, op: QueuedWrite[_Write], *, transactional: bool
) -> Outcome:
    try:
        if not transactional:
            return Outcome(value=await _run_one(connection, op.fn))
        async with connection.transaction():
            return Outcome(value=await _run_one(connection, op.fn))
    except Exception as exc:
        return Outcome(error=exc)


async def _run_one(connection: Connection, write: _Write) -> object:
    if isinstance(write, Statement):
        return await connection.execute(write.sql, *write.args)
    return await write(connection)
