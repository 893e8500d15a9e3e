"""The one shape a log record takes once it leaves the ``logging`` module.

The console, the file, the live bus and the history reader all speak :class:`LogEvent`, so the
dashboard sees the same fields whether an event arrives live or from ``app.log``.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import msgspec

from better_ccflare.core import LogLevel

__all__ = ["LogEvent"]

_STDLIB_LEVELS: dict[LogLevel, int] = {
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARN: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
}

# Shared, stateless: only its ``formatException`` is used, which is the stdlib's traceback text.
_TRACEBACK_FORMATTER = logging.Formatter()


class LogEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One log record, already redacted, as the bus publishes it and the history reader returns it.

    ``level`` uses the configuration's four names; ``CRITICAL`` is reported as ``ERROR`` and
    custom levels below ``INFO`` as ``DEBUG``, so consumers handle a closed set.
    """

    ts_ms: int
    """When the record was created, epoch milliseconds (UTC)."""
    level: LogLevel
    logger: str
    """The ``logging`` logger name, e.g. ``better_ccflare.proxy``."""
    msg: str
    """The final message, arguments already interpolated."""
    data: dict[str, Any] | None = None
    """Structured data the caller passed as ``extra={"data": {...}}``, JSON-compatible."""
    exc: str | None = None
    """Traceback text when the record carried ``exc_info`` or ``stack_info``."""


def stdlib_level(level: LogLevel) -> int:
    """The ``logging`` level number for a configured level (``WARN`` is ``logging.WARNING``)."""
    return _STDLIB_LEVELS[level]


def level_of(levelno: int) -> LogLevel:
    """Fold any ``logging`` level number into the four configured names."""
    if levelno >= logging.ERROR:
        return LogLevel.ERROR
    if levelno >= logging.WARNING:
        return LogLevel.WARN
    if levelno >= logging.INFO:
        return LogLevel.INFO
    return LogLevel.DEBUG


def exception_text(record: logging.LogRecord) -> str | None:
    """The record's traceback text; ``exc_info`` is formatted once and cached, like the stdlib."""
    if record.exc_info and not record.exc_text:
        record.exc_text = _TRACEBACK_FORMATTER.formatException(record.exc_info)
    return record.exc_text or None


def event_from_record(record: logging.LogRecord) -> LogEvent:
    """Build the event for a record; redaction has already happened in the handler's filter."""
    tracebacks = [text for text in (exception_text(record), record.stack_info) if text]
    return LogEvent(
        ts_ms=round(record.created * 1000),
        level=level_of(record.levelno),
        logger=record.name,
        msg=record.getMessage(),
        data=_record_data(record),
        exc="\n".join(tracebacks) or None,
    )


def _record_data(record: logging.LogRecord) -> dict[str, Any] | None:
    data: object = record.__dict__.get("data")
    if data is None:
        return None
    if isinstance(data, dict):
        # RedactionFilter has already turned it into a JSON-compatible dict with string keys.
        return cast("dict[str, Any]", data)
    return {"value": data}
