"""The SQLite writer: the shared write queue, its batches split between two connections.

A batch is cut into runs. A run of statements (the proxy's records: request rows,
payloads, account and key use) goes to the writer process (``_writer_process.py``), which
writes it at idle priority so that it does not delay requests; a run of functions of the
connection (everything somebody awaits: adding an account, the token compare-and-swap,
retention) runs on the writer thread, which owns the server's own write connection. Each run is
one ``BEGIN IMMEDIATE`` transaction, and the runs go one after the other, so order is kept
exactly. A run of functions that fails is retried write by write, except when another process
held the lock past the busy timeout (each retry would only wait it out again); the process does
the same for its statements.

If the process cannot start, or ends twice in a row in the middle of a batch, the statements
run on the writer thread as well (the way every write ran before the process existed), and the
log says so once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import NamedTuple, TypeVar, cast

import msgspec
from sqlite_utils import Database

from better_ccflare.database._write_queue import (
    LINGER_S,
    Outcome,
    QueuedWrite,
    WriteQueue,
)

from ._connection import ConnectionThread
from ._writer_link import WriterProcess, WriterProcessError
from ._writer_process import (
    BatchMark,
    WriteFailedError,
    is_locked,
    run_statements,
    transaction,
)

__all__ = ["LINGER_S", "Writer", "data_version"]

_T = TypeVar("_T")
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder().decode


class _Record(NamedTuple):
    """A queued statement whose parameters are already msgpack, as the writer process takes
    them. Encoding at once costs a fraction of a microsecond and leaves nothing for the cycle
    collector: a tuple of 31 values per request row, alive until its batch is written, made the
    collector's passes under load several times longer (``docs/performance.md``, "The tail")."""

    sql: str
    params: msgspec.Raw


_Write = Callable[[Database], object] | _Record
_log = logging.getLogger("better_ccflare.database")

BACKLOG_OPS = 2_000
"""Queued writes that make the next batch of records urgent. At idle priority a batch of 500
records takes from a few to a few hundred milliseconds of wall time, depending on how much CPU
the server leaves unused; a server whose core is nearly always busy leaves too little, and
this many writes then pile up within a second."""


class Writer(WriteQueue[_Write]):
    """Owns the write connection's thread, the writer process, and the queue in front of them.

    It also answers :meth:`changed_elsewhere`, because only it knows which of its two
    connections committed since each last looked (see there).
    """

    __slots__ = (
        "_batches",
        "_process",
        "_process_starts",
        "_stale",
        "_thread",
        "_token",
        "_versions",
    )

    def __init__(
        self,
        thread: ConnectionThread,
        *,
        payload_budget_bytes: int,
        process: WriterProcess | None,
        data_version: int,
    ) -> None:
        """``data_version`` is the thread's connection's ``PRAGMA data_version`` now;
        ``process`` None writes everything on the thread."""
        super().__init__(
            self._run_batch, nothing=_nothing, payload_budget_bytes=payload_budget_bytes
        )
        self._thread = thread
        self._process = process
        self._versions: list[int | None] = [data_version, None]
        """The last ``data_version`` read on the thread's connection and on the process's."""
        self._stale = [False, True]
        """Whether the other connection changed the database since that reading."""
        self._process_starts = 0
        """The process's starts when its reading was last taken from its start."""
        self._token = secrets.token_hex(8)
        """This writer's name in ``writer_progress``; with a number per batch of records, what
        makes a batch sent again after its child died count once."""
        self._batches = 0

    async def submit(
        self, fn: Callable[[Database], _T], *, label: str, transactional: bool = True
    ) -> _T:
        """Queue ``fn(db)`` and return its result once its transaction has committed.

        ``transactional=False`` runs ``fn`` alone and outside any transaction (``VACUUM`` needs
        that). If the caller is cancelled while waiting, the write still happens.
        """
        return cast("_T", await self.submit_write(fn, label=label, transactional=transactional))

    async def submit_write(self, fn: _Write, *, label: str, transactional: bool = True) -> object:
        """As the queue's, and a batch of records running at idle priority meanwhile is
        hurried: this write (or flush) comes after it and somebody waits for it."""
        if self._process is not None:
            self._process.hurry()
        return await super().submit_write(fn, label=label, transactional=transactional)

    def enqueue_statement(
        self, sql: str, args: tuple[object, ...], *, label: str, payload_bytes: int = 0
    ) -> bool:
        return self.enqueue(
            _Record(sql, msgspec.Raw(_ENCODE(args))), label=label, payload_bytes=payload_bytes
        )

    async def changed_elsewhere(self) -> bool:
        """Whether a connection other than this writer's two committed since the last call.

        ``PRAGMA data_version`` moves when any *other* connection commits, so each of the two
        connections sees the other's commits as well as the CLI's. A reading is exact while the
        other connection has not committed since the previous one: under load the process
        commits several times a second and the thread rarely, so the process's reading is the
        one asked. When both have committed since (a write of the server's own, such as a
        cooldown, while records were written) both are read again and the answer is yes: one
        reload of the pool too many, never a change missed.
        """
        for index in (0, 1):
            if not self._stale[index] and self._versions[index] is not None:
                return await self._read_version(index)
        changed = [await self._read_version(index) for index in (0, 1)]
        return any(changed)

    async def close(self) -> None:
        if self._process is not None:
            self._process.hurry()
        await super().close()
        if self._process is not None:
            await self._process.close()

    async def _read_version(self, index: int) -> bool:
        if index == 0:
            version = await self._thread.run(data_version)
        elif self._process is None:
            return False
        else:
            version = await self._process.data_version()
        changed = self._versions[index] is not None and version != self._versions[index]
        self._versions[index] = version
        self._stale[index] = False
        return changed

    async def _run_batch(
        self, batch: Sequence[QueuedWrite[_Write]]
    ) -> tuple[Sequence[Outcome], int]:
        # Records run at idle priority unless somebody waits for this batch, the store is
        # closing, or the queue has fallen far behind (a server that keeps its CPU busy leaves
        # idle priority little time): then at batch priority, still never preempting requests.
        urgent = (
            self._closing
            or len(self._pending) >= BACKLOG_OPS
            or any(op.future is not None for op in batch)
        )
        outcomes: list[Outcome] = []
        commits = 0
        start = 0
        while start < len(batch):
            statements = isinstance(batch[start].fn, _Record)
            end = start + 1
            while end < len(batch) and isinstance(batch[end].fn, _Record) == statements:
                end += 1
            run = batch[start:end]
            if statements:
                run_outcomes, run_commits = await self._run_statements(run, urgent=urgent)
            elif all(op.fn is _nothing for op in run):
                # Flushes: what they wait for is the runs before them, already done.
                run_outcomes, run_commits = [_DONE] * len(run), 0
            else:
                run_outcomes, run_commits, changed = await self._thread.run(
                    partial(_execute, batch=run)
                )
                self._stale[1] = self._stale[1] or changed
            outcomes += run_outcomes
            commits += run_commits
            start = end
        return outcomes, commits

    async def _run_statements(
        self, run: Sequence[QueuedWrite[_Write]], *, urgent: bool
    ) -> tuple[list[Outcome], int]:
        records = cast("list[_Record]", [op.fn for op in run])
        self._batches += 1
        mark: BatchMark = (self._token, self._batches)
        for attempt in (1, 2):
            if self._process is None:
                break
            try:
                ack = await self._process.run(records, urgent=urgent, mark=mark)
            except WriterProcessError as exc:
                # A child that ended mid-batch may have committed all or part of it: the retry,
                # with the same mark, skips what it did.
                if attempt == 1:
                    _log.error("%s; starting a new one and retrying the batch.", exc)
                    continue
                _log.critical("%s again; the server now writes its records on its own thread.", exc)
                self._process = None
                break
            if self._process.starts != self._process_starts:
                # A new child: its data_version counts from its own start.
                self._process_starts = self._process.starts
                self._versions[1], self._stale[1] = self._process.ready_version, False
            if ack.commits:
                self._stale[0] = True
            failures = {index: WriteFailedError(text) for index, text in ack.failures}
            return _outcomes(len(run), failures), ack.commits
        outcomes, commits = await self._thread.run(
            partial(_execute_records, records=records, mark=mark)
        )
        self._stale[1] = self._stale[1] or commits > 0
        return outcomes, commits


def _nothing(_db: Database) -> None:
    return None


def data_version(db: Database) -> int:
    """The connection's ``PRAGMA data_version``: it moves when another connection commits."""
    return int(db.conn.execute("PRAGMA data_version").fetchone()[0])


def _execute_records(
    db: Database, records: Sequence[_Record], mark: BatchMark
) -> tuple[list[Outcome], int]:
    """The writer process's work, on the writer thread (when there is no process)."""
    statements = [(sql, _DECODE(params)) for sql, params in records]
    failures, commits = run_statements(db.conn, statements, mark)
    return _outcomes(len(statements), dict(failures)), commits


def _outcomes(count: int, failures: Mapping[int, Exception]) -> list[Outcome]:
    """Each statement's outcome, given the failures by index (most batches have none)."""
    if not failures:
        return [_DONE] * count
    return [
        _DONE if (failure := failures.get(index)) is None else Outcome(error=failure)
        for index in range(count)
    ]


def _execute(db: Database, batch: Sequence[QueuedWrite[_Write]]) -> tuple[list[Outcome], int, bool]:
    """Run a run of functions on the writer thread: each op's outcome, the commits made, and
    whether they changed the database (a flush's empty transaction does not)."""
    changes = db.conn.total_changes
    outcomes, commits = _execute_functions(db, batch)
    return outcomes, commits, db.conn.total_changes != changes


def _execute_functions(
    db: Database, batch: Sequence[QueuedWrite[_Write]]
) -> tuple[list[Outcome], int]:
    if not batch[0].transactional:
        return [_attempt(db, batch[0], transactional=False)], 0
    try:
        with transaction(db.conn):
            values = [_call(db, op.fn) for op in batch]
    except Exception as exc:
        # One by one would only wait out the busy timeout again for every op.
        if len(batch) == 1 or is_locked(exc):
            return [Outcome(error=exc)] * len(batch), 0
        outcomes = [_attempt(db, op, transactional=True) for op in batch]
        return outcomes, sum(outcome.error is None for outcome in outcomes)
    return [_DONE if value is None else Outcome(value=value) for value in values], 1


_DONE = Outcome()
"""The outcome of every write that returned nothing (most of them): shared, not built per row."""


def _call(db: Database, write: _Write) -> object:
    return cast("Callable[[Database], object]", write)(db)


def _attempt(db: Database, op: QueuedWrite[_Write], *, transactional: bool) -> Outcome:
    try:
        if not transactional:
            return Outcome(value=_call(db, op.fn))
        with transaction(db.conn):
            return Outcome(value=_call(db, op.fn))
    except Exception as exc:
        return Outcome(error=exc)
