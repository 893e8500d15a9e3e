from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

from better_ccflare.core import LogFormat, LogLevel
from better_ccflare.logger import configure_logging

MAX_BYTES = 250  # two of the ~95-byte lines below fit in one file


def _messages(path: Path) -> list[str]:
    return [json.loads(line)["msg"] for line in path.read_text(encoding="utf-8").splitlines()]


def _configure(log_dir: Path, backup_count: int) -> None:
    configure_logging(
        level=LogLevel.INFO,
        fmt=LogFormat.JSON,
        log_dir=log_dir,
        console=False,
        max_bytes=MAX_BYTES,
        backup_count=backup_count,
    )


def test_file_rotates_at_max_bytes_and_keeps_backup_count_files(
    tmp_path: Path, log: logging.Logger
) -> None:
    _configure(tmp_path, backup_count=3)
    for i in range(20):
        log.info("event %02d", i)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "app.log",
        "app.log.1",
        "app.log.2",
        "app.log.3",
    ]
    assert all(p.stat().st_size <= MAX_BYTES for p in tmp_path.iterdir())


def test_rotated_files_hold_the_most_recent_records_in_order(
    tmp_path: Path, log: logging.Logger
) -> None:
    _configure(tmp_path, backup_count=3)
    for i in range(20):
        log.info("event %02d", i)
    kept = [
        msg
        for name in ("app.log.3", "app.log.2", "app.log.1", "app.log")
        for msg in _messages(tmp_path / name)
    ]
    expected = [f"event {i:02d}" for i in range(20)][-len(kept) :]
    assert kept == expected
    assert 4 <= len(kept) < 20  # older files were deleted, not kept forever


def test_reconfiguring_appends_to_the_existing_file(tmp_path: Path, log: logging.Logger) -> None:
    _configure(tmp_path, backup_count=2)
    log.info("before")
    _configure(tmp_path, backup_count=2)
    log.info("after")
    assert _messages(tmp_path / "app.log") == ["before", "after"]


def test_a_record_larger_than_max_bytes_is_still_written_whole(
    tmp_path: Path, log: logging.Logger
) -> None:
    _configure(tmp_path, backup_count=2)
    log.info("x" * (MAX_BYTES * 2))
    log.info("next")
    assert _messages(tmp_path / "app.log.1") == ["x" * (MAX_BYTES * 2)]
    assert _messages(tmp_path / "app.log") == ["next"]


def test_the_log_file_and_its_rotations_are_readable_by_their_owner_only(
    tmp_path: Path, log: logging.Logger
) -> None:
    _configure(tmp_path, backup_count=2)
    for i in range(10):
        log.info("event %02d", i)
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files] == ["app.log", "app.log.1", "app.log.2"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}


def test_a_log_file_left_readable_by_others_is_tightened(
    tmp_path: Path, log: logging.Logger
) -> None:
    (tmp_path / "app.log").write_text("")
    (tmp_path / "app.log").chmod(0o644)
    _configure(tmp_path, backup_count=2)
    log.info("event")
    assert stat.S_IMODE((tmp_path / "app.log").stat().st_mode) == 0o600
