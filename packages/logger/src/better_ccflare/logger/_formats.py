"""How a record is written: one JSON object a line, or a readable single line.

Both formatters render a :class:`LogEvent`, so the console and the file never disagree about
fields. Timestamps are UTC with milliseconds and a ``Z``: ``2026-11-24T10:01:08.123Z``.

JSON line (the file always uses it; ``data`` and ``exc`` appear only when present)::

    {"ts":"2026-11-24T10:01:08.123Z","level":"INFO","logger":"better_ccflare.proxy",
     "msg":"forwarded","data":{"status":200},"exc":"Traceback ..."}

Pretty line::

    2026-11-24T10:01:08.123Z INFO  [better_ccflare.proxy] forwarded status=200
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from better_ccflare.core import LogLevel

from ._event import LogEvent, event_from_record

__all__ = ["JsonFormatter", "PrettyFormatter"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


class _JsonLine(msgspec.Struct, frozen=True, omit_defaults=True):
    """The file's line schema; field order is the key order on disk."""

    ts: str
    level: LogLevel
    logger: str
    msg: str
    data: dict[str, Any] | None = None
    exc: str | None = None


# ``enc_hook=str`` is a last resort for records that bypassed RedactionFilter (which already
# makes ``data`` JSON-compatible): an odd value is written as text instead of failing the line.
_ENCODER = msgspec.json.Encoder(enc_hook=str)
_LINE_DECODER = msgspec.json.Decoder(_JsonLine)


def format_ts(ts_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds and ``Z``."""
    moment = _EPOCH + ts_ms * _ONE_MS
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def encode_json_line(event: LogEvent) -> str:
    """One JSON object, no newline, as written to ``app.log``."""
    line = _JsonLine(
        ts=format_ts(event.ts_ms),
        level=event.level,
        logger=event.logger,
        msg=event.msg,
        data=event.data,
        exc=event.exc,
    )
    return _ENCODER.encode(line).decode("utf-8")


def decode_json_line(line: bytes | str) -> LogEvent:
    """The event a JSON line holds.

    Raises:
        ValueError: The line is not one of ours (``msgspec.DecodeError`` is a ``ValueError``).
    """
    parsed = _LINE_DECODER.decode(line)
    moment = datetime.fromisoformat(parsed.ts)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {parsed.ts!r} has no time zone")
    return LogEvent(
        ts_ms=(moment - _EPOCH) // _ONE_MS,
        level=parsed.level,
        logger=parsed.logger,
        msg=parsed.msg,
        data=parsed.data,
        exc=parsed.exc,
    )


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts``, ``level``, ``logger``, ``msg``, then ``data`` and ``exc``.

    Newlines inside the message or traceback are escaped by JSON, so every record is exactly
    one line and the file can be read back line by line.
    """

    def format(self, record: logging.LogRecord) -> str:
        return encode_json_line(event_from_record(record))


class PrettyFormatter(logging.Formatter):
    """``<ts> <LEVEL> [<logger>] <message> key=value ...`` with the traceback on following lines.

    Line breaks inside the message are shown as ``\\n`` so that one record is one line and a
    logged value cannot forge a line that looks like another record. String data values are
    written bare when they are a single plain word, JSON-quoted otherwise; other values as
    compact JSON.
    """

    def format(self, record: logging.LogRecord) -> str:
        event = event_from_record(record)
        msg = event.msg.replace("\r", "\\r").replace("\n", "\\n")
        line = f"{format_ts(event.ts_ms)} {event.level:<5} [{event.logger}] {msg}"
        if event.data:
            line += "".join(f" {key}={_pretty_value(value)}" for key, value in event.data.items())
        if event.exc:
            line += "\n" + event.exc
        return line


def _pretty_value(value: object) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in '"=' for c in value):
        return value
    return _ENCODER.encode(value).decode("utf-8")
