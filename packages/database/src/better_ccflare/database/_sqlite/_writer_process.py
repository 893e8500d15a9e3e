"""The writer process: where the proxy's request records are written to SQLite.

Why a process of its own. Writing a batch of a few hundred request rows costs SQLite about
2.5 ms of CPU. On a thread of the server that work shared the server's GIL with the event loop,
and the requests that arrived during a batch waited for it: at one request at a time, 1 to 2 %
of them took 1 to 3 ms longer, which was the whole p99 (``docs/performance.md``, "The tail").
Here the batch runs in a child process, in a thread at idle priority (``SCHED_IDLE`` on
Linux): whenever the server wakes up to handle a request, the kernel gives it the CPU at once.
The child also gives the CPU back every :data:`CHUNK` statements (:func:`_pause`), so that a
request finds at most one chunk, about 0.2 ms, in its way even when the scheduler picks the
child at a bad moment. A batch the server is waiting for (a flush, a write somebody awaits, a
queue that has fallen behind because the server keeps the CPU too busy for idle priority) is
flagged :data:`URGENT` and runs on the child's other thread, at ``SCHED_BATCH`` priority: a fair
share of the CPU, so the writer never starves. That thread pauses between chunks too: the
server waking up does not preempt a thread at batch priority, it waits for the chunk to end (a
whole batch without pauses put 1 to 2 ms into the proxy's p99). A batch already running at idle
priority when somebody starts waiting behind it would hold them up for as long as the server
keeps the CPU busy (seconds, on a saturated machine): the server then sends :data:`HURRY`, and
the other thread finishes that batch from where it got to. So nobody waits on idle priority.

This file is both sides' code: the server imports it for the wire format and
:func:`run_statements`, and runs it as a script (not with ``-m``, which would import the whole
package) for the child, which needs nothing but the standard library and msgspec. The wire
format: length-prefixed msgpack frames; the server sends a :class:`BatchFrame` and reads one
:class:`AckFrame` back, one at a time (a :data:`HURRY` in between has no body and no answer).
The child writes its frames to a private copy of its stdout and points stdout itself at
stderr, so that nothing printed can corrupt a frame. It ignores SIGINT, SIGTERM and SIGHUP (a
Ctrl-C or a service manager's stop reaches the whole process group; the child must not die
before the server has handed it the last rows) and ends when its stdin closes, which happens
when the server closes it or exits for any reason, after writing the batch in flight.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any, BinaryIO

import msgspec

__all__ = [
    "BUSY_TIMEOUT_S",
    "HEADER",
    "HURRY",
    "URGENT",
    "WRITER_PROGRESS_SQL",
    "AckFrame",
    "BatchFrame",
    "BatchMark",
    "WriteFailedError",
    "configure_write_connection",
    "is_locked",
    "run_statements",
    "transaction",
]

HEADER = struct.Struct("<IB")
"""Before each frame: its length and flags (:data:`URGENT`), outside the body so that the
child can route a frame without decoding it."""
URGENT = 1
"""Run this batch at batch priority rather than idle: somebody waits for it, or the queue has
fallen behind."""
HURRY = 2
"""A frame with no body: finish the batch in flight at batch priority, now somebody waits for
what comes after it (or it has taken too long at idle priority). Harmless when it is done."""

BUSY_TIMEOUT_S = 10.0
"""SQLite's busy timeout on every connection: wait for another process's lock this long
instead of failing with "database is locked"."""
_LOCKED_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


BatchMark = tuple[str, int]
"""A batch's name: its writer's token (one per server's store) and the batch's number."""

WRITER_PROGRESS_SQL = (
    "CREATE TABLE IF NOT EXISTS writer_progress (writer TEXT PRIMARY KEY, "
    "batch INTEGER NOT NULL, done INTEGER NOT NULL, at_ms INTEGER NOT NULL)"
)
"""How far each writer got with its latest batch, committed with the batch itself (migration
10). A child that dies after its commit but before its answer leaves the server not knowing
whether the batch was written; the server sends it again, and the statements already done
(the whole batch, or those a one-by-one retry got through) are skipped instead of counting an
account's or a key's use a second time."""
_DONE_SQL = "SELECT done FROM writer_progress WHERE writer = ? AND batch = ?"
_MARK_SQL = (
    "INSERT INTO writer_progress (writer, batch, done, at_ms) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(writer) DO UPDATE SET batch = excluded.batch, done = excluded.done, "
    "at_ms = excluded.at_ms"
)
_FORGET_SQL = "DELETE FROM writer_progress WHERE at_ms < ?"
_FORGET_AFTER_MS = 3_600_000
"""Marks of writers silent this long are dropped (servers that have stopped): a batch is only
ever sent again within seconds."""


class BatchFrame(msgspec.Struct, array_like=True, frozen=True):
    """Statements to run as one transaction, in order, by the number of their SQL."""

    new_sql: list[str]
    """SQL the child has not been sent yet: numbered on from the ones it has. A batch of
    records alternates between a long upsert and an update, so the text goes once, the numbers
    every time."""
    statements: Sequence[tuple[int, Any]]
    mark: BatchMark | None = None
    """The batch's name, kept in ``writer_progress`` (see :data:`WRITER_PROGRESS_SQL`); None
    for a probe, which writes nothing."""


class AckFrame(msgspec.Struct, array_like=True, frozen=True):
    """What a batch came to; the child also sends one, with nothing done, when it is ready."""

    commits: int
    failures: list[tuple[int, str]]
    """The index in the batch and the error of each statement that failed."""
    data_version: int
    """The child's ``PRAGMA data_version`` after the batch: it moves when another connection
    (the server's own thread, the CLI) commits, never for the child's own commits."""


class WriteFailedError(Exception):
    """A statement the writer process could not run; the message is SQLite's error."""


def configure_write_connection(conn: sqlite3.Connection) -> None:
    """The pragmas of every connection that writes (the server's thread and this process)."""
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    # Zero deleted content at least inside b-tree pages (FAST costs no extra I/O), so values that
    # were overwritten, such as plaintext tokens replaced by ciphertext, do not linger in the
    # file. Keep a build's stronger default (ON) where it has one.
    if conn.execute("PRAGMA secure_delete").fetchone()[0] == 0:
        conn.execute("PRAGMA secure_delete=FAST")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Generator[None]:
    """One transaction that takes the write lock up front (``BEGIN IMMEDIATE``).

    Taking the lock at the start means a read-then-write inside the transaction (such as the
    refresh-token compare-and-swap) cannot interleave with another process's write, and a busy
    database is waited for (``busy_timeout``) instead of failing at the first write.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def run_statements(
    conn: sqlite3.Connection,
    statements: Sequence[tuple[str, Any]],
    mark: BatchMark | None = None,
) -> tuple[list[tuple[int, Exception]], int]:
    """Run ``statements`` as one transaction; (the failures by index, the commits made).

    See :func:`statement_steps`, which this runs through without stopping.
    """
    steps = statement_steps(conn, statements, mark)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def statement_steps(
    conn: sqlite3.Connection,
    statements: Sequence[tuple[str, Any]],
    mark: BatchMark | None = None,
) -> Generator[None, None, tuple[list[tuple[int, Exception]], int]]:
    """Run ``statements`` as one transaction, stopping (yielding) after every :data:`CHUNK`;
    returns (the failures by index, the commits made).

    Consecutive statements of the same SQL run as one ``executemany``. Between two chunks the
    caller may pause, or hand the rest to another thread (see :class:`_Run`). If the transaction
    fails, the statements are retried one by one, each in its own transaction, so that one bad
    row does not take the others down with it; except when another process held the lock past
    the busy timeout, where each retry would only wait it out again. With a ``mark``, each
    transaction also records how far the batch got, and the statements a previous attempt at
    the same batch committed are skipped (see :data:`WRITER_PROGRESS_SQL`).
    """
    if not statements:
        return [], 0
    done = 0
    try:
        with transaction(conn):
            done = _done(conn, mark)
            for start in range(done, len(statements), CHUNK):
                if start > done:
                    yield
                _run_grouped(conn, statements[start : start + CHUNK])
            if done < len(statements):
                _mark(conn, mark, len(statements))
    except Exception as exc:
        if len(statements) - done == 1 or is_locked(exc):
            return [(index, exc) for index in range(done, len(statements))], 0
        failures: list[tuple[int, Exception]] = []
        for index in range(done, len(statements)):
            sql, params = statements[index]
            try:
                with transaction(conn):
                    conn.execute(sql, params)
                    _mark(conn, mark, index + 1)
            except Exception as error:
                failures.append((index, error))
        return failures, len(statements) - done - len(failures)
    return [], int(done < len(statements))


def _done(conn: sqlite3.Connection, mark: BatchMark | None) -> int:
    """How many of the batch's statements an earlier attempt committed."""
    if mark is None:
        return 0
    row = conn.execute(_DONE_SQL, mark).fetchone()
    return 0 if row is None else int(row[0])


def _mark(conn: sqlite3.Connection, mark: BatchMark | None, done: int) -> None:
    if mark is not None:
        now_ms = int(time.time() * 1000)
        conn.execute(_FORGET_SQL, (now_ms - _FORGET_AFTER_MS,))
        conn.execute(_MARK_SQL, (*mark, done, now_ms))


def _run_grouped(conn: sqlite3.Connection, statements: Sequence[tuple[str, Any]]) -> None:
    sql = statements[0][0]
    rows: list[Any] = []
    for statement_sql, params in statements:
        if statement_sql != sql:
            conn.executemany(sql, rows)
            sql, rows = statement_sql, []
        rows.append(params)
    conn.executemany(sql, rows)


CHUNK = 16
"""Statements between two stops of :func:`statement_steps`: 0.1 to 0.2 ms of SQLite's work for
request rows, the most a request can find in its way (see :func:`_pause`)."""
PAUSE_S = 0.0005
"""The child's pause between chunks. A batch of 500 statements takes 16 ms more wall time; the
child's throughput stays several times what the busiest proxy needs."""
CHECKPOINT_EVERY_S = 1.0
"""How often the idle thread copies the WAL back into the database (see :class:`_Writer`)."""
CHECKPOINT_AT_THE_LATEST_S = 10.0
"""How long the WAL may grow while the idle thread gets no turn (a server under full load)."""


def is_locked(exc: Exception) -> bool:
    """True when another connection kept the database locked past the busy timeout."""
    return isinstance(exc, sqlite3.Error) and exc.sqlite_errorcode in _LOCKED_CODES


# --------------------------------------------------------------------------- the child


def _set_policy(policy: str) -> None:
    """Set the calling thread's scheduling policy, best effort: ``SCHED_BATCH`` (never preempt
    the server when waking up) or ``SCHED_IDLE`` (run only when the CPU would otherwise be
    idle). Where those do not exist, a higher nice value stands in for both."""
    with contextlib.suppress(OSError, AttributeError):
        if hasattr(os, policy):
            os.sched_setscheduler(0, getattr(os, policy), os.sched_param(0))
        else:
            os.nice(10)


def _pause() -> None:
    """Sleep between chunks, so that the child holds the CPU in short bursts only.

    Whenever something preempts the server (a kernel thread, a soft interrupt), the scheduler
    may pick the child next even at idle priority, and a child that never sleeps then keeps the
    CPU until the next tick (seen with ftrace on this machine: 2.5 ms). With pauses, a request
    waits for one chunk at most.
    """
    time.sleep(PAUSE_S)  # noqa: TID251 (the child's own thread, no event loop here)


class _Writer:
    """The child's connection and what it knows: a frame's steps, and the answer to it."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)  # noqa: TID251 (this package owns SQLite)
        configure_write_connection(self._conn)
        # SQLite checkpoints inside the commit that finds the WAL over 1,000 pages: copying
        # 4 MB back into the database, 2 to 3 ms without a pause, which the batch thread cannot
        # be interrupted in. Checkpoints happen here instead, on the idle thread (see
        # :meth:`checkpoint`).
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointed = time.monotonic()
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(BatchFrame)
        self._sql: list[str] = []
        self.lock = threading.Lock()
        """Held by the thread using the connection: one step of a frame at a time."""

    def checkpoint(self, *, after_s: float) -> None:
        """Copy the WAL back into the database if the last copy is ``after_s`` old.

        A failure is said on stderr (the server's) and tried again next time: the WAL only
        grows meanwhile."""
        if time.monotonic() - self._checkpointed < after_s:
            return
        self._checkpointed = time.monotonic()
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            print(f"better-ccflare writer process: WAL checkpoint failed: {exc}", file=sys.stderr)

    def steps(self, body: bytes) -> Generator[None, None, tuple[list[tuple[int, Exception]], int]]:
        """Run a frame a chunk at a time; never raises (a frame that does not decode, or a
        connection gone bad, comes back as a failure of the whole frame)."""
        try:
            frame = self._decoder.decode(body)
            self._sql += frame.new_sql
            statements = [(self._sql[number], params) for number, params in frame.statements]
            return (yield from statement_steps(self._conn, statements, frame.mark))
        except Exception as exc:
            return [(-1, exc)], 0

    def ack(self, commits: int, failures: list[tuple[int, Exception]]) -> bytes:
        """The answer to a frame; never raises."""
        try:
            version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
            text = [(index, f"{type(error).__name__}: {error}") for index, error in failures]
            return self._encode_ack(commits, text, version)
        except Exception as exc:
            return self._encode_ack(commits, [(-1, f"{type(exc).__name__}: {exc}")], -1)

    def _encode_ack(self, commits: int, failures: list[tuple[int, str]], version: int) -> bytes:
        body = self._encoder.encode(AckFrame(commits, failures, version))
        return HEADER.pack(len(body), 0) + body

    def close(self) -> None:
        self._conn.close()


class _Run:
    """One frame: run a step at a time by the idle thread, or from where it got to by the
    reader thread (an urgent frame, or one the server hurries).

    Whichever thread runs the last step sends the answer, after the idle thread's checkpoint:
    once the answer is out the server may send the next frame, and the connection must then be
    free. Each step holds the connection's lock, so the two threads never use it at once, and a
    hurry waits at most for the step the idle thread is in.
    """

    __slots__ = ("_done", "_send", "_steps", "_writer")

    def __init__(self, writer: _Writer, body: bytes, send: Callable[[bytes], None]) -> None:
        self._writer = writer
        self._send = send
        self._steps = writer.steps(body)
        self._done = False

    def step(self) -> bool:
        """Run the next step here (the idle thread); whether any is left."""
        with self._writer.lock:
            return self._advance(checkpoint_after_s=CHECKPOINT_EVERY_S)

    def finish(self) -> None:
        """Run every step left here (the reader thread), unless it is done already; with the
        same pauses, so that batch priority, too, holds the CPU in short bursts only."""
        with self._writer.lock:
            while self._advance(checkpoint_after_s=CHECKPOINT_AT_THE_LATEST_S):
                _pause()

    def _advance(self, *, checkpoint_after_s: float) -> bool:
        if self._done:
            return False
        try:
            next(self._steps)
        except StopIteration as stop:
            self._answer(*stop.value, checkpoint_after_s=checkpoint_after_s)
        return not self._done

    def _answer(
        self, failures: list[tuple[int, Exception]], commits: int, *, checkpoint_after_s: float
    ) -> None:
        answer = self._writer.ack(commits, failures)
        self._writer.checkpoint(after_s=checkpoint_after_s)
        self._done = True
        self._send(answer)


class _IdleWorker:
    """A thread at idle priority that runs the frames nobody waits for, pausing between steps."""

    def __init__(self) -> None:
        self._runs: queue.SimpleQueue[_Run] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="idle-writer", daemon=True)
        self._thread.start()

    def take(self, run: _Run) -> bool:
        """Queue ``run``; False if the thread is gone (the caller runs it itself then)."""
        if not self._thread.is_alive():
            return False
        self._runs.put(run)
        return True

    def _loop(self) -> None:
        _set_policy("SCHED_IDLE")
        try:
            while True:
                run = self._runs.get()
                while run.step():
                    _pause()
        except BaseException as exc:
            # A bug: the frame in hand is finished by the reader when the server hurries it,
            # and the reader runs every frame after it (at batch priority).
            print(f"better-ccflare writer process: the idle thread ended: {exc!r}", file=sys.stderr)
            raise


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def _serve(path: str, frames_in: BinaryIO, frames_out: BinaryIO) -> None:
    """Move frames: urgent ones run here, at batch priority; the others on the idle worker,
    unless the server hurries them. The server sends one frame at a time, and a
    :data:`HURRY` only while one is in flight."""
    _set_policy("SCHED_BATCH")
    writer = _Writer(path)
    worker = _IdleWorker()

    def send(frame: bytes) -> None:
        with contextlib.suppress(BrokenPipeError):  # the server is gone: nobody to tell
            frames_out.write(frame)
            frames_out.flush()

    send(writer.ack(0, []))
    in_flight: _Run | None = None
    while (head := _read_exactly(frames_in, HEADER.size)) is not None:
        size, flags = HEADER.unpack(head)
        if flags & HURRY:
            if in_flight is not None:
                in_flight.finish()
            continue
        body = _read_exactly(frames_in, size)
        if body is None:
            break
        run = _Run(writer, body, send)
        if flags & URGENT or not worker.take(run):
            run.finish()
        else:
            in_flight = run
    # The server closed our input: it waits for the answer in flight no more, but the rows in
    # it are still to be written, now.
    if in_flight is not None:
        in_flight.finish()
    writer.close()


def main() -> None:
    """The child: ``python _writer_process.py DATABASE_PATH``."""
    for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is not None:
            signal.signal(signum, signal.SIG_IGN)
    frames_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.argv[1], sys.stdin.buffer, frames_out)


if __name__ == "__main__":
    main()
