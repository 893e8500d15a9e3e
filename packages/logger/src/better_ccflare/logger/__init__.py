"""Logging for better-ccflare: formats, a rotating JSON-lines file, redaction and the live bus.

Built on the standard ``logging`` module: packages log with
``logging.getLogger("better_ccflare.<package>")`` and pass structured data as
``extra={"data": {...}}``; the application calls :func:`configure_logging` once at start-up.
"""

from ._bus import LogBus, LogBusHandler, LogSubscription
from ._event import LogEvent
from ._formats import JsonFormatter, PrettyFormatter
from ._redaction import REDACTED, RedactionFilter, redact, redact_data
from ._setup import (
    DEFAULT_BACKUP_COUNT,
    DEFAULT_MAX_BYTES,
    LOG_FILE_NAME,
    LOGGER_NAME,
    configure_logging,
    reset_logging,
)
from ._tail import read_log_tail

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BACKUP_COUNT",
    "DEFAULT_MAX_BYTES",
    "LOGGER_NAME",
    "LOG_FILE_NAME",
    "REDACTED",
    "JsonFormatter",
    "LogBus",
    "LogBusHandler",
    "LogEvent",
    "LogSubscription",
    "PrettyFormatter",
    "RedactionFilter",
    "configure_logging",
    "read_log_tail",
    "redact",
    "redact_data",
    "reset_logging",
]
