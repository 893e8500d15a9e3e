"""The single writer's queue: every write from async code goes through one queue per store.

Every transaction has a fixed cost (SQLite: taking the lock, writing every page it touched to
the WAL, a hand-off to the writer thread and back; PostgreSQL: round trips and a commit that
waits for the WAL flush), so writes are grouped: the writer task takes whatever is queued (up to
``MAX_BATCH_OPS`` operations and ``MAX_BATCH_PAYLOAD_BYTES`` of payloads) and hands it to the
backend's batch executor, which runs it as ONE transaction.

Fire-and-forget writes (:meth:`Writer.enqueue`, one per proxied request) linger up to
``LINGER_S`` before their batch starts, so that a busy proxy writes a few large transactions a
second instead of one or two rows per transaction (with time-ordered request ids, recording
cost the benchmark's proxy 24 to 47 µs of CPU per request instead of 52 to 58; see the
proxy-overhead section of ``docs/performance.md``). A write somebody waits for
(:meth:`Writer.submit`, :meth:`Writer.flush`) and closing start the batch at once, taking the
lingering writes along, so nothing waits for the timer but the proxy's records.
If a batch's transaction fails, the executor retries its operations one by one so that one bad
write does not take the others down with it.

There are two ways in. :meth:`Writer.submit` returns the operation's result once committed (a
token compare-and-swap needs to know whether it won). :meth:`Writer.enqueue` never blocks or
awaits: the request hot path records this way, and a failure is logged, not raised. Payloads
(large bodies) count against a byte budget; over budget they are dropped and counted, so a slow
disk cannot make the proxy's memory grow without bound.

This module is the queue, the same for every backend; what an operation is (a function of a
SQLite connection, a statement for PostgreSQL) and how a batch runs is the backend's executor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from ._errors import StoreClosedError
from ._maintenance import StoreStats

__all__ = [
    "LINGER_S",
    "MAX_BATCH_OPS",
    "BatchExecutor",
    "Outcome",
    "QueuedWrite",
    "Statement",
    "WriteQueue",
]

_F = TypeVar("_F")
_log = logging.getLogger("better_ccflare.database")

MAX_BATCH_OPS = 500
MAX_BATCH_PAYLOAD_BYTES = 16 * 1024 * 1024
LINGER_S = 0.05
"""How long a fire-and-forget write may wait for others to share its transaction: long enough
for a busy proxy's records to form batches of dozens, short enough that the dashboard's
request list looks live."""


class Statement(NamedTuple):
    """One SQL statement and its arguments, queued when its result is not needed (the hot
    path's writes: a request row, a payload, an account's or key's use). Backends run a batch's
    statements of the same SQL with one ``executemany`` instead of a call per row."""

    sql: str
    args: tuple[object, ...]


class QueuedWrite(NamedTuple, Generic[_F]):
    """One queued write. A named tuple, not a dataclass: one is built per proxied request on the
    event loop, and a tuple is the cheapest object to build."""

    fn: _F
    """What to run; the backend's executor knows its shape."""
    label: str
    """What the write does, for the log line if it fails; never holds secrets."""
    future: asyncio.Future[Any] | None
    payload_bytes: int
    transactional: bool


class Outcome(NamedTuple):
    """What one write came to: its value, or the error it failed with."""

    value: object = None
    error: Exception | None = None


BatchExecutor = Callable[[Sequence[QueuedWrite[_F]]], Awaitable[tuple[Sequence[Outcome], int]]]
"""Runs a batch (one non-transactional write alone, or several writes as one transaction,
retried one by one if it fails) and returns each write's outcome, in order, and the number of
transactions it committed. An exception from it fails the whole batch."""


class WriteQueue(Generic[_F]):
    """The queue in front of a backend's one writer, and the task that drains it."""

    __slots__ = (
        "_batches",
        "_closing",
        "_dropping",
        "_due",
        "_execute",
        "_in_flight",
        "_linger",
        "_nothing",
        "_ops_committed",
        "_ops_failed",
        "_payload_budget_bytes",
        "_payloads_dropped",
        "_pending",
        "_queued_payload_bytes",
        "_task",
        "_transactions",
        "_wakeup",
        "_write_seconds",
    )

    def __init__(
        self, execute: BatchExecutor[_F], *, nothing: _F, payload_budget_bytes: int
    ) -> None:
        """``nothing`` is a write that does nothing, what :meth:`flush` queues."""
        self._execute = execute
        self._nothing = nothing
        self._payload_budget_bytes = payload_budget_bytes
        self._pending: deque[QueuedWrite[_F]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._due = False
        """The queue is to be written now rather than after the linger."""
        self._linger: asyncio.TimerHandle | None = None
        self._closing = False
        self._dropping = False
        self._in_flight: Sequence[QueuedWrite[_F]] = ()
        self._queued_payload_bytes = 0
        self._payloads_dropped = 0
        self._transactions = 0
        self._ops_committed = 0
        self._ops_failed = 0
        self._batches = 0
        self._write_seconds = 0.0

    def start(self) -> None:
        """Start the writer task on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="better-ccflare-db-writer"
        )
        self._task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        """A writer that dies by a bug must not leave callers waiting or writes piling up."""
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        self._closing = True
        lost = [*self._in_flight, *self._pending]
        self._in_flight = ()
        self._pending.clear()
        _log.critical(
            "The database writer stopped unexpectedly; %d queued writes are lost and the store "
            "refuses new ones. Restart better-ccflare.",
            len(lost),
            exc_info=error,
        )
        for op in lost:
            if op.future is not None and not op.future.done():
                op.future.set_exception(StoreClosedError())

    async def submit_write(self, fn: _F, *, label: str, transactional: bool = True) -> object:
        """Queue ``fn`` and return its result once its transaction has committed.

        ``transactional=False`` runs ``fn`` alone and outside any transaction (``VACUUM`` needs
        that). If the caller is cancelled while waiting, the write still happens.
        """
        self._check_open()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._push(QueuedWrite(fn, label, future, 0, transactional), urgent=True)
        return await future

    def enqueue_statement(
        self, sql: str, args: tuple[object, ...], *, label: str, payload_bytes: int = 0
    ) -> bool:
        """Queue ``sql`` without waiting; ``False`` if it was dropped for the payload budget."""
        return self.enqueue(Statement(sql, args), label=label, payload_bytes=payload_bytes)  # pyright: ignore[reportArgumentType] (every backend's writes include statements)

    def enqueue(self, fn: _F, *, label: str, payload_bytes: int = 0) -> bool:
        """Queue ``fn`` without waiting; returns ``False`` if it was dropped for the budget.

        Only operations carrying a payload (``payload_bytes > 0``) can be dropped. This runs
        for every proxied request, so the checks and the push are written out here.
        """
        if self._closing:
            raise StoreClosedError
        if payload_bytes:
            if self._queued_payload_bytes + payload_bytes > self._payload_budget_bytes:
                self._payloads_dropped += 1
                if not self._dropping:
                    self._dropping = True
                    _log.warning(
                        "The database writer is behind: dropping request payloads while more "
                        "than %d bytes of them wait to be written. Request rows are still kept.",
                        self._payload_budget_bytes,
                    )
                return False
            self._dropping = False
            self._queued_payload_bytes += payload_bytes
        pending = self._pending
        pending.append(QueuedWrite(fn, label, None, payload_bytes, True))
        if len(pending) >= MAX_BATCH_OPS:
            self._write_now()
        elif self._linger is None and not self._due:
            self._linger = asyncio.get_running_loop().call_later(LINGER_S, self._write_now)
        return True

    async def flush(self) -> None:
        """Return once everything queued before this call has been committed or has failed."""
        await self.submit_write(self._nothing, label="flush")

    async def close(self) -> None:
        """Refuse new writes, write everything already queued, and stop the task."""
        self._closing = True
        self._write_now()
        if self._task is not None:
            # wait() does not re-raise a crash; _on_task_done has reported it already.
            await asyncio.wait([self._task])

    def stats(self) -> StoreStats:
        return StoreStats(
            queued_ops=len(self._pending) + len(self._in_flight),
            queued_payload_bytes=self._queued_payload_bytes,
            payloads_dropped=self._payloads_dropped,
            transactions=self._transactions,
            ops_committed=self._ops_committed,
            ops_failed=self._ops_failed,
            batches=self._batches,
            write_seconds=self._write_seconds,
        )

    def _check_open(self) -> None:
        if self._closing:
            raise StoreClosedError

    def _push(self, op: QueuedWrite[_F], *, urgent: bool) -> None:
        pending = self._pending
        pending.append(op)
        if urgent or len(pending) >= MAX_BATCH_OPS:
            self._write_now()
        elif self._linger is None and not self._due:
            self._linger = asyncio.get_running_loop().call_later(LINGER_S, self._write_now)

    def _write_now(self) -> None:
        self._due = True
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._wakeup.set()

    async def _run(self) -> None:
        while self._pending or not self._closing:
            if not self._pending or not (self._due or self._closing):
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._take_batch()
            if not self._pending:
                # Writes queued while this batch runs start a new linger.
                self._due = False
            self._in_flight = batch
            started = time.perf_counter()
            try:
                outcomes, commits = await self._execute(batch)
            except Exception as exc:  # the executor could not run at all (the disk vanished)
                outcomes, commits = [Outcome(error=exc)] * len(batch), 0
            self._in_flight = ()
            self._batches += 1
            self._write_seconds += time.perf_counter() - started
            self._transactions += commits
            self._settle(batch, outcomes)

    def _take_batch(self) -> list[QueuedWrite[_F]]:
        first = self._pending.popleft()
        batch = [first]
        if not first.transactional:
            return batch
        payload_bytes = first.payload_bytes
        while self._pending and len(batch) < MAX_BATCH_OPS:
            following = self._pending[0]
            if not following.transactional or (
                payload_bytes + following.payload_bytes > MAX_BATCH_PAYLOAD_BYTES
            ):
                break
            batch.append(self._pending.popleft())
            payload_bytes += following.payload_bytes
        return batch

    def _settle(self, batch: Sequence[QueuedWrite[_F]], outcomes: Sequence[Outcome]) -> None:
        for op, outcome in zip(batch, outcomes, strict=True):
            self._queued_payload_bytes -= op.payload_bytes
            if outcome.error is None:
                self._ops_committed += 1
            else:
                self._ops_failed += 1
            if op.future is not None:
                if op.future.done():  # the caller gave up waiting
                    continue
                if outcome.error is None:
                    op.future.set_result(outcome.value)
                else:
                    op.future.set_exception(outcome.error)
            elif outcome.error is not None:
                _log.error(
                    "A queued database write (%s) failed and was dropped: %s",
                    op.label,
                    outcome.error,
                    exc_info=outcome.error,
                )
