"""The server's end of the writer process (``_writer_process.py``): start it, hand it batches.

The child starts with the first batch, not with the store, so that a CLI command that only
reads or changes an account never starts one. One frame goes out and its answer comes back
before the next goes out (the lock), which keeps batches in order and lets the probe of
:meth:`WriterProcess.data_version` share the pipe. While a batch runs at idle priority,
:meth:`WriterProcess.hurry` may send a :data:`HURRY` beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from . import _writer_process
from ._writer_process import HEADER, HURRY, URGENT, AckFrame, BatchFrame, BatchMark

__all__ = ["WriterProcess", "WriterProcessError"]

_SCRIPT = Path(_writer_process.__file__)
_CLOSE_TIMEOUT_S = 30.0
"""How long closing waits for the child to write what it holds (a batch at idle priority on a
busy machine) before it is killed."""


_ANSWER_TIMEOUT_S = 60.0
"""A child that has not answered a batch in this long is taken for hung, killed and replaced.
A batch takes milliseconds at batch priority (see :data:`_HURRY_AFTER_S`); this is far beyond."""
_HURRY_AFTER_S = 1.0
"""How long a batch may take at idle priority before it is hurried anyway: a server that
keeps its core busy leaves idle priority next to nothing, and the records wait in memory."""


class WriterProcessError(Exception):
    """The writer process could not be started or ended in the middle of a batch."""


class WriterProcess:
    """One child process that runs statements on its own connection to ``path``."""

    __slots__ = (
        "_decoder",
        "_encoder",
        "_idle_in_flight",
        "_lock",
        "_path",
        "_proc",
        "_sql_numbers",
        "ready_version",
        "starts",
    )

    def __init__(self, path: Path) -> None:
        self._path = path
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(AckFrame)
        self._sql_numbers: dict[str, int] = {}
        """The SQL the current child knows, by the number it knows it by."""
        self._idle_in_flight: asyncio.subprocess.Process | None = None
        """The child running a batch at idle priority that has not been hurried yet."""
        self.starts = 0
        """How many children were started: a new one's ``data_version`` counts anew."""
        self.ready_version = 0
        """The ``data_version`` the latest child had when it started."""

    async def run(
        self,
        statements: Sequence[tuple[str, object]],
        *,
        urgent: bool,
        mark: BatchMark | None = None,
    ) -> AckFrame:
        """Run ``statements`` as one transaction in the child and return its answer.

        A batch sent again after its child ended must come with the same ``mark``: what the
        dead child committed of it is then skipped.

        Raises:
            WriterProcessError: The child could not start, or it ended before answering (the
                batch may or may not have been committed).
        """
        async with self._lock:
            proc = self._proc or await self._start()
            frame = self._frame(statements, mark)
            hurry_later = None
            try:
                assert proc.stdin is not None
                proc.stdin.write(HEADER.pack(len(frame), URGENT if urgent else 0) + frame)
                if not urgent:
                    self._idle_in_flight = proc
                    hurry_later = asyncio.get_running_loop().call_later(_HURRY_AFTER_S, self.hurry)
                await proc.stdin.drain()
                return await asyncio.wait_for(self._read_ack(proc), _ANSWER_TIMEOUT_S)
            except (OSError, EOFError, msgspec.DecodeError, TimeoutError) as exc:
                await self._discard(proc)
                raise WriterProcessError(
                    f"the database writer process (pid {proc.pid}) ended in the middle of a "
                    f"batch: {exc!r}"
                ) from exc
            finally:
                self._idle_in_flight = None
                if hurry_later is not None:
                    hurry_later.cancel()

    def hurry(self) -> None:
        """Have the batch in flight finished at batch priority, if it runs at idle priority:
        somebody now waits for what is queued behind it (see ``_writer_process``)."""
        proc, self._idle_in_flight = self._idle_in_flight, None
        if proc is not None and proc.stdin is not None:
            # A child that died meanwhile is found out by the batch's own read.
            with contextlib.suppress(OSError):
                proc.stdin.write(HEADER.pack(0, HURRY))

    def _frame(self, statements: Sequence[tuple[str, object]], mark: BatchMark | None) -> bytes:
        numbers = self._sql_numbers
        new_sql: list[str] = []
        numbered: list[tuple[int, object]] = []
        for sql, params in statements:
            number = numbers.get(sql)
            if number is None:
                number = numbers[sql] = len(numbers)
                new_sql.append(sql)
            numbered.append((number, params))
        return self._encoder.encode(BatchFrame(new_sql, numbered, mark))

    async def data_version(self) -> int:
        """The child's ``PRAGMA data_version`` now (after the batch in flight, if any)."""
        return (await self.run((), urgent=True)).data_version

    async def close(self) -> None:
        """Let the child finish and exit (it ends when its stdin closes)."""
        async with self._lock:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), _CLOSE_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def _start(self) -> asyncio.subprocess.Process:
        try:
            proc = await asyncio.create_subprocess_exec(
                # -P: the script's folder (this package's modules) must not shadow the stdlib.
                sys.executable, "-P", str(_SCRIPT), str(self._path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
        except OSError as exc:
            raise WriterProcessError(f"cannot start the database writer process: {exc}") from exc
        try:
            ready = await self._read_ack(proc)
        except (OSError, EOFError, msgspec.DecodeError) as exc:
            await self._discard(proc)
            raise WriterProcessError(
                f"the database writer process did not start (exit status {proc.returncode})"
            ) from exc
        self._proc = proc
        self._sql_numbers = {}
        self.starts += 1
        self.ready_version = ready.data_version
        return proc

    async def _read_ack(self, proc: asyncio.subprocess.Process) -> AckFrame:
        assert proc.stdout is not None
        head = await proc.stdout.readexactly(HEADER.size)
        return self._decoder.decode(await proc.stdout.readexactly(HEADER.unpack(head)[0]))

    async def _discard(self, proc: asyncio.subprocess.Process) -> None:
        """Forget a child that broke; the next batch starts a new one."""
        self._proc = None
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
