"""Reading the most recent events back from ``app.log`` (for ``/api/logs/history``).

The file can be 10 MB, so it is read backwards in blocks from the end and only as far as
needed. When the live file holds fewer events than asked for (it was just rotated), the
rotated files ``app.log.1``, ``app.log.2`` ... are read too, newest first.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator
from pathlib import Path

from ._event import LogEvent
from ._formats import decode_json_line
from ._setup import LOG_FILE_NAME

__all__ = ["read_log_tail"]

_BLOCK_BYTES = 64 * 1024


def read_log_tail(log_dir: Path, limit: int = 1000) -> list[LogEvent]:
    """The last ``limit`` events written to ``log_dir/app.log``, oldest first.

    Lines that are not valid log lines (a half-written last line, a stray edit) are skipped.
    A missing directory or file gives an empty list. This does blocking file I/O; from async
    code call it as ``await asyncio.to_thread(read_log_tail, log_dir)``.
    """
    newest_first: list[LogEvent] = []
    if limit <= 0:
        return newest_first
    for path in _log_files(log_dir):
        with contextlib.closing(_lines_from_end(path)) as lines:
            for line in lines:
                if not line.strip():
                    continue
                try:
                    newest_first.append(decode_json_line(line))
                except ValueError:
                    continue
                if len(newest_first) == limit:
                    return newest_first[::-1]
    return newest_first[::-1]


def _log_files(log_dir: Path) -> Iterator[Path]:
    """The live file, then its rotated predecessors newest first, while they exist."""
    live = log_dir / LOG_FILE_NAME
    if live.is_file():
        yield live
    index = 1
    while (rotated := log_dir / f"{LOG_FILE_NAME}.{index}").is_file():
        yield rotated
        index += 1


def _lines_from_end(path: Path) -> Generator[bytes, None, None]:
    """The file's lines, last first, reading backwards one block at a time."""
    try:
        handle = path.open("rb")
    except OSError:
        return
    with handle:
        position = handle.seek(0, os.SEEK_END)
        # Pieces of the line being assembled, the latest part of the file first. Kept as a list
        # so a very long line costs one join, not a copy per block.
        pieces: list[bytes] = []
        while position > 0:
            step = min(_BLOCK_BYTES, position)
            position -= step
            handle.seek(position)
            block = handle.read(step)
            lines = block.split(b"\n")
            if len(lines) == 1:
                pieces.append(block)
                continue
            yield lines[-1] + b"".join(reversed(pieces))
            yield from reversed(lines[1:-1])
            # The block's first piece may continue in the block before it.
            pieces = [lines[0]]
        yield b"".join(reversed(pieces))
