"""Wiring the ``better_ccflare`` logger to the console, the log file and the live bus.

Only the ``better_ccflare`` logger is configured, never the root logger, so an application that
embeds our packages keeps its own logging. Propagation to the root is switched off while we are
configured so records are not printed twice when the host also logs to the console.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path

from better_ccflare.core import LogFormat, LogLevel

from ._bus import LogBus, LogBusHandler
from ._event import stdlib_level
from ._formats import JsonFormatter, PrettyFormatter
from ._redaction import RedactionFilter

__all__ = [
    "DEFAULT_BACKUP_COUNT",
    "DEFAULT_MAX_BYTES",
    "LOGGER_NAME",
    "LOG_FILE_NAME",
    "configure_logging",
    "reset_logging",
]

LOGGER_NAME = "better_ccflare"
"""The parent of every package's logger (``better_ccflare.proxy``, ``better_ccflare.database``)."""
LOG_FILE_NAME = "app.log"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUP_COUNT = 5


@dataclass(frozen=True, slots=True)
class _Installed:
    handlers: tuple[logging.Handler, ...]
    bus: LogBus
    level_before: int
    propagate_before: bool


class _State:
    """What the last :func:`configure_logging` installed, so the next call can replace it."""

    lock = threading.Lock()
    installed: _Installed | None = None


def configure_logging(
    *,
    level: LogLevel,
    fmt: LogFormat,
    log_dir: Path | None,
    console: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    backup_count: int = DEFAULT_BACKUP_COUNT,
    bus: LogBus | None = None,
) -> LogBus:
    """Send ``better_ccflare.*`` records to stderr, ``log_dir/app.log`` and a :class:`LogBus`.

    Calling it again replaces the handlers the previous call installed (closing its file), so it
    is safe to call whenever the settings change. Every handler redacts credentials
    (:class:`RedactionFilter`) before writing anything.

    The file is always JSON lines, whatever ``fmt`` says, because the dashboard and
    :func:`read_log_tail` read it back. It is rotated by size by the standard library's
    ``RotatingFileHandler``: at ``max_bytes`` it becomes ``app.log.1`` (older ones shift up) and
    at most ``backup_count`` rotated files are kept. If the directory cannot be created or the
    file opened, logging continues without the file and one warning says why.

    Args:
        level: The least severe level logged (``WARN`` is ``logging.WARNING``).
        fmt: The console format; the file is JSON regardless.
        log_dir: Directory for ``app.log`` (created with its parents); ``None`` for no file.
        console: Whether to write to stderr.
        max_bytes: Size at which the file is rotated.
        backup_count: How many rotated files to keep (at least 1: the stdlib handler never
            rotates without somewhere to rotate to).
        bus: Where the live stream's events go; by default the previous call's bus, so existing
            subscribers keep receiving, or a new one on the first call.

    Returns:
        The bus the events are published to.

    Raises:
        ValueError: ``max_bytes`` or ``backup_count`` is less than 1.
    """
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1 byte, got {max_bytes}")
    if backup_count < 1:
        raise ValueError(f"backup_count must be at least 1 file, got {backup_count}")
    logger = logging.getLogger(LOGGER_NAME)
    with _State.lock:
        previous = _State.installed
        _uninstall(logger, previous)
        if bus is None:
            bus = previous.bus if previous else LogBus()
        handlers: list[logging.Handler] = [LogBusHandler(bus)]
        if console:
            stream = logging.StreamHandler(sys.stderr)
            stream.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else PrettyFormatter())
            handlers.append(stream)
        file_error: OSError | None = None
        if log_dir is not None:
            try:
                handlers.append(_open_file(log_dir / LOG_FILE_NAME, max_bytes, backup_count))
            except OSError as exc:
                file_error = exc
        redaction = RedactionFilter()
        for handler in handlers:
            handler.addFilter(redaction)
            logger.addHandler(handler)
        _State.installed = _Installed(
            handlers=tuple(handlers),
            bus=bus,
            level_before=previous.level_before if previous else logger.level,
            propagate_before=previous.propagate_before if previous else logger.propagate,
        )
        logger.setLevel(stdlib_level(level))
        logger.propagate = False
    if file_error is not None:
        logger.getChild("logger").warning(
            "cannot write the log file in %s (%s); logging without a file",
            log_dir,
            file_error.strerror or file_error,
        )
    return bus


def reset_logging() -> None:
    """Remove and close what :func:`configure_logging` installed and restore the logger's level
    and propagation; a no-op when it was never called. For shutdown and for tests."""
    logger = logging.getLogger(LOGGER_NAME)
    with _State.lock:
        installed = _State.installed
        if installed is None:
            return
        _uninstall(logger, installed)
        logger.setLevel(installed.level_before)
        logger.propagate = installed.propagate_before
        _State.installed = None


class _PrivateRotatingFileHandler(RotatingFileHandler):
    """A rotating file only its owner can read, like the database: log lines name accounts,
    clients and request paths. Rotation renames the file, so rotated files keep the mode, and
    each new file is opened through :meth:`_open` again; a file left readable by an older
    version is tightened on open."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.chmod(self.baseFilename, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def _open_file(path: Path, max_bytes: int, backup_count: int) -> RotatingFileHandler:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handler = _PrivateRotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
    )
    handler.setFormatter(JsonFormatter())
    return handler


def _uninstall(logger: logging.Logger, installed: _Installed | None) -> None:
    if installed is None:
        return
    for handler in installed.handlers:
        logger.removeHandler(handler)
        handler.close()
