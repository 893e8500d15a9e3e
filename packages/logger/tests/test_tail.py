from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from better_ccflare.core import LogFormat, LogLevel
from better_ccflare.logger import (
    DEFAULT_BACKUP_COUNT,
    DEFAULT_MAX_BYTES,
    configure_logging,
    read_log_tail,
)


def _configure(
    log_dir: Path, max_bytes: int = DEFAULT_MAX_BYTES, backup_count: int = DEFAULT_BACKUP_COUNT
) -> None:
    configure_logging(
        level=LogLevel.DEBUG,
        fmt=LogFormat.JSON,
        log_dir=log_dir,
        console=False,
        max_bytes=max_bytes,
        backup_count=backup_count,
    )


def test_tail_returns_the_last_events_oldest_first(tmp_path: Path, log: logging.Logger) -> None:
    _configure(tmp_path)
    for i in range(50):
        log.info("event %d", i)
    assert [event.msg for event in read_log_tail(tmp_path, limit=5)] == [
        f"event {i}" for i in range(45, 50)
    ]


def test_tail_returns_everything_when_the_file_is_short(
    tmp_path: Path, log: logging.Logger
) -> None:
    _configure(tmp_path)
    log.info("only")
    assert [event.msg for event in read_log_tail(tmp_path)] == ["only"]


def test_tail_events_match_what_the_bus_published(tmp_path: Path, log: logging.Logger) -> None:
    bus = configure_logging(
        level=LogLevel.DEBUG, fmt=LogFormat.JSON, log_dir=tmp_path, console=False
    )
    log.warning("with data", extra={"data": {"n": 1, "nested": {"ok": True}}})
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("with traceback")
    assert read_log_tail(tmp_path) == bus.recent()


def test_tail_skips_lines_that_are_not_log_events(tmp_path: Path, log: logging.Logger) -> None:
    _configure(tmp_path)
    log.info("first")
    with (tmp_path / "app.log").open("a", encoding="utf-8") as handle:
        handle.write("not json\n\n{}\n")
        handle.write('{"ts":"2026-01-01T00:00:00","level":"INFO","logger":"x","msg":"naive"}\n')
    log.info("second")
    with (tmp_path / "app.log").open("a", encoding="utf-8") as handle:
        handle.write('{"ts":"2026-01-01T00:00:00.000Z","level":"IN')  # a half-written line
    assert [event.msg for event in read_log_tail(tmp_path)] == ["first", "second"]


def test_tail_skipped_lines_do_not_count_towards_the_limit(
    tmp_path: Path, log: logging.Logger
) -> None:
    _configure(tmp_path)
    log.info("a")
    log.info("b")
    with (tmp_path / "app.log").open("a", encoding="utf-8") as handle:
        handle.write("garbage\n" * 10)
    assert [event.msg for event in read_log_tail(tmp_path, limit=2)] == ["a", "b"]


def test_tail_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert read_log_tail(tmp_path / "nowhere") == []


def test_tail_with_a_zero_limit_is_empty(tmp_path: Path, log: logging.Logger) -> None:
    _configure(tmp_path)
    log.info("x")
    assert read_log_tail(tmp_path, limit=0) == []


def test_tail_continues_into_rotated_files(tmp_path: Path, log: logging.Logger) -> None:
    _configure(tmp_path, max_bytes=250, backup_count=5)
    for i in range(6):
        log.info("event %d", i)
    assert (tmp_path / "app.log.2").exists()
    assert [event.msg for event in read_log_tail(tmp_path, limit=5)] == [
        f"event {i}" for i in range(1, 6)
    ]


def test_tail_reads_lines_longer_than_its_read_block(tmp_path: Path, log: logging.Logger) -> None:
    _configure(tmp_path)
    long_message = "y" * 300_000
    log.info("before")
    log.info(long_message)
    log.info("after")
    assert [event.msg for event in read_log_tail(tmp_path)] == ["before", long_message, "after"]


def test_tail_of_a_large_file_reads_only_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = '{{"ts":"2026-01-01T00:00:00.000Z","level":"INFO","logger":"x","msg":"filler {}"}}\n'
    (tmp_path / "app.log").write_text("".join(line.format(i) for i in range(150_000)))
    assert (tmp_path / "app.log").stat().st_size > 10_000_000
    monkeypatch.setattr(Path, "open", _open_counting)
    tail = read_log_tail(tmp_path, limit=3)
    assert [event.msg for event in tail] == ["filler 149997", "filler 149998", "filler 149999"]
    assert 0 < _CountingReader.bytes_read <= 128 * 1024


class _CountingReader(io.BufferedReader):
    """A binary file that counts the bytes read from it, standing in for ``Path.open``."""

    bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        _CountingReader.bytes_read += len(data)
        return data


def _open_counting(path: Path, *_args: object, **_kwargs: object) -> _CountingReader:
    return _CountingReader(io.FileIO(path, "rb"))
