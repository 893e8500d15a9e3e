"""The writer process: records written out of the server's process, at idle priority, never lost
when the child breaks, and the wire format and signals the child lives by."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from pathlib import Path

import msgspec
import pytest
from sqlite_utils import Database

from better_ccflare.database import SecretKey, Store
from better_ccflare.database._sqlite import _writer_link, _writer_process
from better_ccflare.database._sqlite._connection import ConnectionThread, open_reader, open_writer
from better_ccflare.database._sqlite._writer_process import (
    HEADER,
    HURRY,
    URGENT,
    WRITER_PROGRESS_SQL,
    AckFrame,
    BatchFrame,
    BatchMark,
    run_statements,
)

from .builders import T0, account, request
from .tracing import SqlTrace
from .waiting import eventually, holds


def _children() -> list[int]:
    """The pids of this process's living children."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _size(path: Path) -> int:
    return path.stat().st_size


def _writer_children() -> list[int]:
    return [
        pid
        for pid in _children()
        if b"_writer_process.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


async def _recorded(store: Store, count: int) -> None:
    """Wait until ``count`` requests are stored and the server has their batch's answer, as the
    lingering writes arrive (a flush would make the batch one somebody waits for, which takes
    the other path). The rows are visible a moment before the answer is read."""

    async def stored() -> bool:
        return store.stats().queued_ops == 0 and await store.requests.count() >= count

    await eventually(stored)
    assert await store.requests.count() == count


async def test_records_are_written_by_the_child_not_by_the_server(
    db_path: Path, key: SecretKey, sql_trace: SqlTrace
) -> None:
    async with await Store.open(db_path, key=key) as store:
        assert _writer_children() == []  # a store that writes no records starts no child
        for i in range(50):
            store.requests.record(request(f"r{i}"))
        await _recorded(store, 50)

        assert len(_writer_children()) == 1
        # The server's own connections (traced) never ran the insert.
        assert not [sql for _, sql in sql_trace.statements if "INSERT INTO requests" in sql]

    await eventually(holds(lambda: _writer_children() == []))  # closing ends the child


async def test_the_child_writes_at_idle_priority(db_path: Path, key: SecretKey) -> None:
    async with await Store.open(db_path, key=key) as store:
        store.requests.record(request())
        await _recorded(store, 1)
        (child,) = _writer_children()
        tids = [int(name) for name in os.listdir(f"/proc/{child}/task")]
        policies = {tid: os.sched_getscheduler(tid) for tid in tids}
        # The thread that moves frames (and writes what somebody waits for) never preempts the
        # server; the one that writes what nobody waits for runs only when the CPU is idle.
        assert sorted(policies.values()) == sorted([os.SCHED_BATCH, os.SCHED_IDLE])


async def test_a_child_killed_in_the_middle_of_a_batch_loses_no_record(
    db_path: Path, key: SecretKey, caplog: pytest.LogCaptureFixture
) -> None:
    async with await Store.open(db_path, key=key) as store:
        store.requests.record(request("before"))
        await _recorded(store, 1)
        (child,) = _writer_children()
        # Hold the write lock so that the child's next batch waits inside its transaction,
        # then kill it there.
        holder = ConnectionThread("lock-holder", lambda: Database(db_path))
        await holder.run(lambda db: db.conn.execute("BEGIN IMMEDIATE"))
        for i in range(20):
            store.requests.record(request(f"r{i}"))
        await asyncio.sleep(0.3)  # the batch lingered, went to the child, and waits there
        assert store.stats().queued_ops == 20
        with caplog.at_level(logging.ERROR, logger="better_ccflare.database"):
            os.kill(child, signal.SIGKILL)
            await asyncio.sleep(0.2)
            await holder.run(lambda db: db.conn.execute("ROLLBACK"))
            await holder.close()
            await _recorded(store, 21)

        assert "ended in the middle of a batch" in caplog.text
        (new_child,) = _writer_children()
        assert new_child != child


async def test_without_a_child_the_records_are_written_on_the_writer_thread(
    db_path: Path,
    key: SecretKey,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    sql_trace: SqlTrace,
) -> None:
    monkeypatch.setattr(_writer_link, "_SCRIPT", db_path.parent / "no-such-script.py")
    with caplog.at_level(logging.ERROR, logger="better_ccflare.database"):
        async with await Store.open(db_path, key=key) as store:
            for i in range(3):
                store.requests.record(request(f"r{i}"))
            await _recorded(store, 3)

    assert "now writes its records on its own thread" in caplog.text
    writers = {name for name, sql in sql_trace.statements if "INSERT INTO requests" in sql}
    assert {name.rsplit("_", 1)[0] for name in writers} == {"better-ccflare-db-writer"}


async def test_the_child_does_not_count_as_a_change_made_elsewhere(
    db_path: Path, key: SecretKey
) -> None:
    async with await Store.open(db_path, key=key) as store:
        for round_ in range(3):
            for i in range(10):
                store.requests.record(request(f"r{round_}-{i}"))
            await _recorded(store, 10 * (round_ + 1))
            assert not await store.changed_elsewhere()

        async with await Store.open(db_path, key=key) as other:  # as the CLI would
            await other.accounts.add(account("theirs"))

        store.requests.record(request("after"))
        await _recorded(store, 31)
        assert await store.changed_elsewhere()
        assert not await store.changed_elsewhere()


_HOLDING_CHILD = """
import struct, sys
import msgspec

HEADER, URGENT, HURRY = struct.Struct({header!r}), {urgent}, {hurry}
ack = msgspec.msgpack.encode([0, [], 0])
out = sys.stdout.buffer

def send():
    out.write(HEADER.pack(len(ack), 0) + ack)
    out.flush()

send()  # ready
held = False
while head := sys.stdin.buffer.read(HEADER.size):
    size, flags = HEADER.unpack(head)
    if flags & HURRY:
        if held:
            held = False
            send()
        continue
    sys.stdin.buffer.read(size)
    if flags & URGENT:
        send()
    else:
        held = True  # a batch at idle priority on a machine that never idles
"""


@contextlib.asynccontextmanager
async def _held_record(
    db_path: Path, key: SecretKey, monkeypatch: pytest.MonkeyPatch, *, hurry_after_s: float
) -> AsyncGenerator[Store]:
    """A store whose writer process, stood in for by a child that answers a batch at idle
    priority only when hurried (and writes nothing), holds one record."""
    script = db_path.with_name("holding_child.py")
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(_HOLDING_CHILD.format(header=HEADER.format, urgent=URGENT, hurry=HURRY))
    monkeypatch.setattr(_writer_link, "_SCRIPT", script)
    monkeypatch.setattr(_writer_link, "_HURRY_AFTER_S", hurry_after_s)
    async with await Store.open(db_path, key=key) as store:
        store.requests.record(request())
        await eventually(holds(lambda: _children() != []))  # the holding child
        yield store


async def test_a_write_somebody_waits_for_hurries_the_batch_in_front_of_it(
    db_path: Path, key: SecretKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _held_record(db_path, key, monkeypatch, hurry_after_s=60.0) as store:
        await asyncio.sleep(0.2)  # the batch lingered and went out
        assert store.stats().queued_ops == 1  # held by the child
        async with asyncio.timeout(5):
            await store.accounts.add(account("mine"))
        assert store.stats().queued_ops == 0
        assert len(await store.accounts.list_all()) == 1


async def test_a_batch_at_idle_priority_is_hurried_after_a_while_anyway(
    db_path: Path, key: SecretKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _held_record(db_path, key, monkeypatch, hurry_after_s=0.3) as store:
        started = time.monotonic()
        await eventually(holds(lambda: store.stats().queued_ops == 0), timeout_s=5)
        assert time.monotonic() - started >= 0.2  # held until hurried, not answered at once


# --------------------------------------------------------------------------- the child itself


def _child(path: Path) -> subprocess.Popen[bytes]:
    script = Path(_writer_link.__file__).with_name("_writer_process.py")
    return subprocess.Popen(
        [sys.executable, "-P", str(script), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )


def _exchange(
    child: subprocess.Popen[bytes], frame: BatchFrame | None, *, urgent: bool = False
) -> AckFrame:
    assert child.stdin is not None
    assert child.stdout is not None
    if frame is not None:
        body = msgspec.msgpack.encode(frame)
        child.stdin.write(HEADER.pack(len(body), URGENT if urgent else 0) + body)
        child.stdin.flush()
    size, _flags = HEADER.unpack(child.stdout.read(HEADER.size))
    return msgspec.msgpack.decode(child.stdout.read(size), type=AckFrame)


def _end(child: subprocess.Popen[bytes]) -> None:
    """Close the child's input and expect it to finish cleanly."""
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.close()
    assert child.wait(10) == 0
    child.stdout.close()


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = open_reader(path)
    try:
        return [tuple(row) for row in db.conn.execute(sql).fetchall()]
    finally:
        db.close()


@pytest.fixture
def table_db(tmp_path: Path) -> Path:
    """A database of one table, ``t (x INTEGER PRIMARY KEY, y TEXT)``, in WAL mode."""
    path = tmp_path / "c.db"
    db = Database(path)
    db.conn.execute("PRAGMA journal_mode=WAL")
    db.conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)")
    db.close()
    return path


@pytest.mark.parametrize("urgent", [False, True])
def test_a_failing_statement_is_reported_by_index_and_spares_the_others(
    table_db: Path, urgent: bool
) -> None:
    path = table_db
    child = _child(path)
    try:
        assert _exchange(child, None).commits == 0  # ready
        insert = "INSERT INTO t VALUES (?, ?)"
        rows = [(insert, (1, "a")), (insert, (1, "dup")), (insert, (2, b"b"))]
        frame = BatchFrame([insert], [(0, params) for _, params in rows])
        ack = _exchange(child, frame, urgent=urgent)
    finally:
        _end(child)

    assert [index for index, _ in ack.failures] == [1]
    assert "UNIQUE constraint failed" in ack.failures[0][1]
    assert ack.commits == 2
    assert _rows(path, "SELECT x, y, typeof(y) FROM t") == [(1, "a", "text"), (2, b"b", "blob")]


def test_the_child_ignores_interrupts_and_ends_when_its_input_closes(table_db: Path) -> None:
    path = table_db
    child = _child(path)
    _exchange(child, None)
    child.send_signal(signal.SIGINT)  # a Ctrl-C reaches the whole process group
    child.send_signal(signal.SIGTERM)
    ack = _exchange(child, BatchFrame(["INSERT INTO t VALUES (?, ?)"], [(0, (5, "late"))]))
    _end(child)

    assert ack.commits == 1
    assert _rows(path, "SELECT y FROM t") == [("late",)]


def test_statements_of_one_sql_run_in_order_across_groups(table_db: Path) -> None:
    path = table_db
    insert, update = "INSERT INTO t VALUES (?, ?)", "UPDATE t SET y = y || ? WHERE x = ?"
    db = open_writer(path)
    statements = [(insert, (1, "a")), (update, ("b", 1)), (update, ("c", 1)), (insert, (2, "d"))]
    try:
        failures, commits = run_statements(db.conn, statements)
    finally:
        db.close()

    assert (failures, commits) == ([], 1)
    assert _rows(path, "SELECT x, y FROM t ORDER BY x") == [(1, "abc"), (2, "d")]


async def test_the_idle_thread_copies_the_wal_back_into_the_database(
    db_path: Path, key: SecretKey
) -> None:
    # The child's own connection never checkpoints inside a commit (wal_autocheckpoint=0); its
    # idle thread does it between batches instead. Only a checkpoint grows the database file.
    async with await Store.open(db_path, key=key) as store:
        size = _size(db_path)
        for i in range(300):
            store.requests.record(request(f"r{i}"))
        await _recorded(store, 300)
        assert _size(db_path) == size  # the rows are in the WAL only

        await asyncio.sleep(_writer_process.CHECKPOINT_EVERY_S)
        store.requests.record(request("next"))
        await _recorded(store, 301)
        await eventually(holds(lambda: _size(db_path) > size))


def _frame_bytes(sql: str, rows: Sequence[tuple[object, ...]]) -> bytes:
    return msgspec.msgpack.encode(BatchFrame([sql], [(0, row) for row in rows]))


def _on_idle_thread() -> bool:
    return threading.current_thread().name == "idle-writer"


def _keep_policy(policy: str) -> None:
    """Stands in for the child's ``_set_policy`` in this process: its threads keep theirs."""


class _ServedChild:
    """The child's frame loop (``_serve``) on a thread of this process, over two pipes, so that
    a test can stop its idle thread where it likes (the real child is another process); this
    process's threads keep their scheduling policy."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_writer_process, "_set_policy", _keep_policy)
        in_read, in_write = os.pipe()
        out_read, out_write = os.pipe()
        self._to_child = os.fdopen(in_write, "wb")
        self._from_child = os.fdopen(out_read, "rb")
        self._out_fd = out_read
        self._child_ends = (os.fdopen(in_read, "rb"), os.fdopen(out_write, "wb"))
        self._thread = threading.Thread(
            target=_writer_process._serve,  # pyright: ignore[reportPrivateUsage]
            args=(str(path), *self._child_ends),
        )
        self._thread.start()
        assert self.answer(timeout_s=10).commits == 0  # ready

    def send(self, body: bytes, flags: int = 0) -> None:
        self._to_child.write(HEADER.pack(len(body), flags) + body)
        self._to_child.flush()

    def answered(self, timeout_s: float) -> bool:
        return bool(select.select([self._out_fd], [], [], timeout_s)[0])

    def answer(self, timeout_s: float) -> AckFrame:
        assert self.answered(timeout_s), "no answer"
        size, _flags = HEADER.unpack(self._from_child.read(HEADER.size))
        return msgspec.msgpack.decode(self._from_child.read(size), type=AckFrame)

    def end(self) -> None:
        self._to_child.close()
        self._thread.join(10)
        assert not self._thread.is_alive()
        for stream in (self._from_child, *self._child_ends):
            stream.close()


@pytest.fixture
def stalled_idle_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Stop the idle thread at its first pause until the event is set, as a server that keeps
    the CPU busy would."""
    release = threading.Event()

    def pause() -> None:
        if _on_idle_thread():
            release.wait(30)

    monkeypatch.setattr(_writer_process, "_pause", pause)
    yield release
    release.set()


def test_a_hurried_batch_is_finished_at_once_by_the_other_thread(
    table_db: Path, stalled_idle_thread: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = table_db
    child = _ServedChild(path, monkeypatch)
    insert = "INSERT INTO t VALUES (?, ?)"
    rows = [(i, "x") for i in range(3 * _writer_process.CHUNK)]
    try:
        child.send(b"", HURRY)  # nothing in flight: harmless
        child.send(_frame_bytes(insert, rows))
        assert not child.answered(0.3)  # the idle thread ran a chunk and stopped
        assert _rows(path, "SELECT count(*) FROM t") == [(0,)]  # nothing committed yet

        child.send(b"", HURRY)
        ack = child.answer(timeout_s=5)
        assert (ack.commits, ack.failures) == (1, [])
        assert _rows(path, "SELECT count(*) FROM t") == [(len(rows),)]

        # The idle thread, let go, finds the batch done and takes the next one.
        stalled_idle_thread.set()
        child.send(_frame_bytes(insert, [(1000, "y")]))
        assert child.answer(timeout_s=5).commits == 1
    finally:
        child.end()
    assert _rows(path, "SELECT count(*) FROM t") == [(len(rows) + 1,)]


def test_an_urgent_batch_pauses_between_chunks_too(
    table_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batch priority is not preempted by the server waking up: without pauses a batch of 500
    # rows held the server's core for milliseconds.
    path = table_db
    pauses: list[str] = []
    monkeypatch.setattr(
        _writer_process, "_pause", lambda: pauses.append(threading.current_thread().name)
    )
    child = _ServedChild(path, monkeypatch)
    rows = [(i, "x") for i in range(3 * _writer_process.CHUNK)]
    child.send(_frame_bytes("INSERT INTO t VALUES (?, ?)", rows), URGENT)
    assert child.answer(timeout_s=5).commits == 1
    child.end()
    assert len(pauses) == 2
    assert "idle-writer" not in pauses


def test_the_batch_in_flight_when_the_server_goes_is_still_written(
    table_db: Path, stalled_idle_thread: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = table_db
    child = _ServedChild(path, monkeypatch)
    child.send(_frame_bytes("INSERT INTO t VALUES (?, ?)", [(i, "x") for i in range(40)]))
    assert not child.answered(0.3)
    child.end()  # input closed with the batch still in flight
    assert _rows(path, "SELECT count(*) FROM t") == [(40,)]


def test_the_idle_thread_answers_only_after_its_checkpoint(
    table_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Once the answer is out, the child's other thread may take the connection for the next
    # frame: the checkpoint must not still be running on it then.
    path = table_db
    events: list[str] = []

    def slow_checkpoint(self: _writer_process._Writer, *, after_s: float) -> None:  # pyright: ignore[reportPrivateUsage]
        time.sleep(0.2)  # noqa: TID251 (the idle thread, no event loop)
        events.append("checkpointed")

    monkeypatch.setattr(_writer_process._Writer, "checkpoint", slow_checkpoint)  # pyright: ignore[reportPrivateUsage]
    child = _ServedChild(path, monkeypatch)
    child.send(_frame_bytes("INSERT INTO t VALUES (?, ?)", [(1, "a")]))
    child.answer(timeout_s=5)
    events.append("answered")
    child.end()

    assert events == ["checkpointed", "answered"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_after_the_idle_thread_ends_the_other_thread_runs_every_frame(
    table_db: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    path = table_db

    def die() -> None:
        if _on_idle_thread():
            raise SystemExit  # ends the thread quietly, as a bug escaping everything would

    monkeypatch.setattr(_writer_process, "_pause", die)
    child = _ServedChild(path, monkeypatch)
    insert = "INSERT INTO t VALUES (?, ?)"
    try:
        child.send(_frame_bytes(insert, [(i, "x") for i in range(40)]))
        assert not child.answered(0.3)  # the idle thread died holding it
        child.send(b"", HURRY)  # as the server does after a second at the latest
        assert child.answer(timeout_s=5).commits == 1
        child.send(_frame_bytes(insert, [(100, "y")]))
        assert child.answer(timeout_s=5).commits == 1
    finally:
        child.end()
    assert _rows(path, "SELECT count(*) FROM t") == [(41,)]
    assert "the idle thread ended" in capfd.readouterr().err


# ------------------------------------------------------- a batch sent again after its child died


@pytest.mark.parametrize("retried_on", ["a new child", "the writer thread"])
async def test_a_batch_sent_again_after_its_child_died_past_the_commit_counts_once(
    db_path: Path,
    key: SecretKey,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    retried_on: str,
) -> None:
    real_run = _writer_link.WriterProcess.run
    deaths: list[BatchMark] = []

    async def commit_then_die(
        self: _writer_link.WriterProcess,
        statements: Sequence[tuple[str, object]],
        *,
        urgent: bool,
        mark: BatchMark | None = None,
    ) -> AckFrame:
        if mark is not None and deaths and retried_on == "the writer thread":
            raise _writer_link.WriterProcessError("the new child died too")
        ack = await real_run(self, statements, urgent=urgent, mark=mark)
        if mark is not None and not deaths:
            # The batch is committed; the child dies before the server has read its answer.
            deaths.append(mark)
            (child,) = _writer_children()
            os.kill(child, signal.SIGKILL)
            await self._discard(self._proc)  # pyright: ignore[reportPrivateUsage, reportArgumentType]
            raise _writer_link.WriterProcessError("the child ended before its answer was read")
        return ack

    monkeypatch.setattr(_writer_link.WriterProcess, "run", commit_then_die)
    with caplog.at_level(logging.ERROR, logger="better_ccflare.database"):
        async with await Store.open(db_path, key=key) as store:
            await store.accounts.add(account("acc-1"))
            for i in range(5):
                store.accounts.record_use_nowait("acc-1", T0 + i, 3_600_000)
                store.requests.record(request(f"r{i}"))
            await _recorded(store, 5)
            await store.flush()
            stored = await store.accounts.get("acc-1")

    assert len(deaths) == 1
    assert "retrying the batch" in caplog.text
    assert stored is not None
    assert (stored.request_count, stored.total_requests) == (5, 5)


def test_statements_a_batch_committed_are_skipped_when_it_comes_again(table_db: Path) -> None:
    path = table_db
    db = Database(path)
    db.conn.execute(WRITER_PROGRESS_SQL)
    db.conn.execute("CREATE TABLE n (id INTEGER PRIMARY KEY, count INTEGER)")
    db.conn.execute("INSERT INTO n VALUES (1, 0)")
    # Another writer's mark from a server that stopped long ago is forgotten on the way.
    db.conn.execute("INSERT INTO writer_progress VALUES ('gone', 7, 3, 0)")
    db.conn.commit()
    db.close()
    bump = "UPDATE n SET count = count + 1"
    insert = "INSERT INTO t VALUES (?, ?)"
    # The insert in the middle fails: the batch runs one statement at a time, marking each.
    statements = [(0, ()), (1, (1, "a")), (1, (1, "dup")), (0, ())]
    child = _child(path)
    try:
        _exchange(child, None)
        first = _exchange(child, BatchFrame([bump, insert], statements, ("w", 1)))
        again = _exchange(child, BatchFrame([], statements, ("w", 1)))
        next_one = _exchange(child, BatchFrame([], statements[:1], ("w", 2)))
    finally:
        _end(child)

    assert ([index for index, _ in first.failures], first.commits) == ([2], 3)
    assert (again.failures, again.commits) == ([], 0)
    assert next_one.commits == 1
    assert _rows(path, "SELECT count FROM n") == [(3,)]
    assert _rows(path, "SELECT writer, batch, done FROM writer_progress") == [("w", 2, 1)]
