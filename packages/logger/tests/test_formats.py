from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from better_ccflare.core import LogFormat, LogLevel
from better_ccflare.logger import (
    LOGGER_NAME,
    JsonFormatter,
    LogBus,
    PrettyFormatter,
    configure_logging,
    reset_logging,
)

# 2026-01-01T00:00:00.123Z
CREATED = 1_767_225_600.123


def _record(
    msg: str = "hello",
    *,
    level: int = logging.INFO,
    data: object = None,
    exc: BaseException | None = None,
) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    record = logging.LogRecord("better_ccflare.proxy", level, __file__, 1, msg, None, exc_info)
    record.created = CREATED
    if data is not None:
        record.__dict__["data"] = data
    return record


def _json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- JSON --------------------------------------------------------------------------------------


def test_json_line_has_timestamp_level_logger_and_message() -> None:
    line = JsonFormatter().format(_record())
    assert json.loads(line) == {
        "ts": "2026-01-01T00:00:00.123Z",
        "level": "INFO",
        "logger": "better_ccflare.proxy",
        "msg": "hello",
    }


def test_json_line_carries_structured_data() -> None:
    line = JsonFormatter().format(_record(data={"status": 200, "account": "work"}))
    assert json.loads(line)["data"] == {"status": 200, "account": "work"}


@pytest.mark.parametrize(
    ("levelno", "name"),
    [
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, "INFO"),
        (logging.WARNING, "WARN"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "ERROR"),
        (5, "DEBUG"),
    ],
)
def test_levels_are_written_with_the_configured_names(levelno: int, name: str) -> None:
    assert json.loads(JsonFormatter().format(_record(level=levelno)))["level"] == name


def test_json_line_is_one_line_even_with_newlines_and_a_traceback() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        record = _record("first\nsecond", exc=exc)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["msg"] == "first\nsecond"
    assert parsed["exc"].startswith("Traceback (most recent call last):")
    assert parsed["exc"].endswith("RuntimeError: boom")


def test_json_timestamp_is_utc_iso_8601_with_milliseconds(
    tmp_path: Path, log: logging.Logger
) -> None:
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=tmp_path, console=False)
    log.info("now")
    (line,) = _json_lines(tmp_path / "app.log")
    ts = line["ts"]
    assert isinstance(ts, str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ts)
    written = datetime.fromisoformat(ts)
    assert abs((datetime.now(UTC) - written).total_seconds()) < 60


def test_data_that_json_cannot_hold_is_stringified_not_fatal(
    tmp_path: Path, log: logging.Logger
) -> None:
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=tmp_path, console=False)
    log.info(
        "odd data",
        extra={"data": {"when": datetime(2026, 1, 1, tzinfo=UTC), "path": Path("/x"), 7: {3}}},
    )
    (line,) = _json_lines(tmp_path / "app.log")
    assert line["data"] == {"when": "2026-01-01T00:00:00Z", "path": "/x", "7": [3]}


def test_data_that_is_not_a_mapping_is_kept_under_value(
    tmp_path: Path, log: logging.Logger
) -> None:
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=tmp_path, console=False)
    log.info("list data", extra={"data": [1, 2]})
    (line,) = _json_lines(tmp_path / "app.log")
    assert line["data"] == {"value": [1, 2]}


# --- pretty ------------------------------------------------------------------------------------


def test_pretty_line_reads_timestamp_level_logger_message_and_data() -> None:
    record = _record("forwarded", data={"status": 200, "model": "claude-sonnet-4"})
    assert PrettyFormatter().format(record) == (
        "2026-01-01T00:00:00.123Z INFO  [better_ccflare.proxy] forwarded "
        "status=200 model=claude-sonnet-4"
    )


def test_pretty_quotes_values_with_spaces_and_writes_structures_as_json() -> None:
    record = _record("x", data={"reason": "rate limited", "usage": {"in": 1}, "none": None})
    line = PrettyFormatter().format(record)
    assert line.endswith(' reason="rate limited" usage={"in":1} none=null')


def test_pretty_keeps_one_record_on_one_line_apart_from_the_traceback() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        record = _record("a\nb", level=logging.ERROR, exc=exc)
    first, *rest = PrettyFormatter().format(record).split("\n")
    assert first == "2026-01-01T00:00:00.123Z ERROR [better_ccflare.proxy] a\\nb"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "RuntimeError: boom"


# --- configuration -----------------------------------------------------------------------------


def test_console_uses_the_chosen_format(
    log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=None)
    log.info("as json")
    assert json.loads(capsys.readouterr().err)["msg"] == "as json"
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.PRETTY, log_dir=None)
    log.info("as text")
    assert capsys.readouterr().err.endswith(" INFO  [better_ccflare.test] as text\n")


def test_file_is_json_lines_even_when_the_console_is_pretty(
    tmp_path: Path, log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.PRETTY, log_dir=tmp_path)
    log.info("one")
    log.warning("two", extra={"data": {"n": 2}})
    assert [(line["level"], line["msg"]) for line in _json_lines(tmp_path / "app.log")] == [
        ("INFO", "one"),
        ("WARN", "two"),
    ]
    assert "WARN  [better_ccflare.test] two n=2" in capsys.readouterr().err


def test_log_dir_is_created_with_its_parents(tmp_path: Path, log: logging.Logger) -> None:
    log_dir = tmp_path / "a" / "b" / "logs"
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=log_dir, console=False)
    log.info("hi")
    assert (log_dir / "app.log").is_file()


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (LogLevel.DEBUG, ["DEBUG", "INFO", "WARN", "ERROR"]),
        (LogLevel.INFO, ["INFO", "WARN", "ERROR"]),
        (LogLevel.WARN, ["WARN", "ERROR"]),
        (LogLevel.ERROR, ["ERROR"]),
    ],
)
def test_level_drops_less_severe_records(
    tmp_path: Path, log: logging.Logger, level: LogLevel, expected: list[str]
) -> None:
    configure_logging(level=level, fmt=LogFormat.JSON, log_dir=tmp_path, console=False)
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [line["level"] for line in _json_lines(tmp_path / "app.log")] == expected


def test_configuring_again_replaces_handlers_instead_of_adding_them(
    tmp_path: Path, log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        configure_logging(level=LogLevel.INFO, fmt=LogFormat.PRETTY, log_dir=tmp_path)
    log.info("once")
    assert len(_json_lines(tmp_path / "app.log")) == 1
    assert capsys.readouterr().err.count("once") == 1
    assert len(logging.getLogger(LOGGER_NAME).handlers) == 3  # bus, console, file


def test_configuring_again_keeps_the_bus_unless_given_another() -> None:
    first = configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=None)
    assert configure_logging(level=LogLevel.DEBUG, fmt=LogFormat.JSON, log_dir=None) is first
    other = LogBus()
    assert (
        configure_logging(level=LogLevel.INFO, fmt=LogFormat.JSON, log_dir=None, bus=other) is other
    )


def test_only_the_better_ccflare_logger_is_configured() -> None:
    root = logging.getLogger()
    root_handlers = list(root.handlers)
    configure_logging(level=LogLevel.DEBUG, fmt=LogFormat.JSON, log_dir=None)
    assert root.handlers == root_handlers
    assert logging.getLogger(LOGGER_NAME).propagate is False


def test_reset_restores_the_logger_as_it_was() -> None:
    logger = logging.getLogger(LOGGER_NAME)
    before = (list(logger.handlers), logger.level, logger.propagate)
    configure_logging(level=LogLevel.DEBUG, fmt=LogFormat.JSON, log_dir=None)
    configure_logging(level=LogLevel.ERROR, fmt=LogFormat.JSON, log_dir=None)
    reset_logging()
    assert (list(logger.handlers), logger.level, logger.propagate) == before


def test_unwritable_log_dir_falls_back_to_the_console_with_one_warning(
    tmp_path: Path, log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    configure_logging(level=LogLevel.INFO, fmt=LogFormat.PRETTY, log_dir=blocker / "logs")
    log.info("still logging")
    err = capsys.readouterr().err.splitlines()
    warnings = [line for line in err if "cannot write the log file" in line]
    assert len(warnings) == 1
    assert "WARN  [better_ccflare.logger]" in warnings[0]
    assert err[-1].endswith("still logging")


@pytest.mark.parametrize(
    ("max_bytes", "backup_count", "message"),
    [(0, 5, "max_bytes must be at least 1 byte"), (100, 0, "backup_count must be at least 1")],
)
def test_rotation_settings_are_validated(max_bytes: int, backup_count: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configure_logging(
            level=LogLevel.INFO,
            fmt=LogFormat.JSON,
            log_dir=None,
            max_bytes=max_bytes,
            backup_count=backup_count,
        )
