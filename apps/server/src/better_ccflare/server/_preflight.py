"""What start-up checks before it opens anything: the data directories and the port.

Both fail for reasons the user can fix (a path under a file or a read-only directory, a port
another process holds), so both end in one :class:`BetterCcflareError` naming what to change,
which the CLI prints as one line with exit status 2, instead of an ``OSError`` surfacing as
"unexpected ... This is a bug" or uvicorn's ``[Errno 98]`` after a "listening on" line.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from better_ccflare.core import BetterCcflareError, Config, ConfigError

__all__ = ["bind_listening_socket", "prepare_data_dirs"]

_PATH_SETTINGS = {"db_path": "BETTER_CCFLARE_DB_PATH", "log_dir": "BETTER_CCFLARE_LOG_DIR"}
"""The settings naming where data is written, and the variable that sets each."""


def prepare_data_dirs(config: Config) -> None:
    """Create the database's and the logs' directories (private, 0700) if they are missing.

    Raises:
        ConfigError: A directory cannot be created or written; the error names the setting,
            its value and where that value came from.
    """
    wanted = {"db_path": config.db_path.parent, "log_dir": config.log_dir}
    for name, directory in wanted.items():
        problem = _unwritable(directory)
        if problem is not None:
            variable = _PATH_SETTINGS[name]
            raise ConfigError(
                variable,
                str(getattr(config, name)),
                f"a location whose directory can be created and written ({directory} "
                f"{problem}); set {variable} to one",
                config.source_of(name).kind.value,
            )


def _unwritable(directory: Path) -> str | None:
    """Why ``directory`` cannot hold our files once created, or ``None`` if it can."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        return "is a file, not a directory"
    except OSError as exc:
        return f"cannot be created: {exc.strerror or exc}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def bind_listening_socket(config: Config) -> socket.socket:
    """The socket the server will listen on, bound to the configured host and port.

    Raises:
        BetterCcflareError: The address is in use or cannot be bound.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            config.host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise _cannot_listen(config, f"unknown host ({exc.strerror})") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise _cannot_listen(
                config,
                "the address is already in use. Stop the other server, or choose another "
                "port with --port or PORT",
            ) from exc
        raise _cannot_listen(config, exc.strerror or str(exc)) from exc
    sock.set_inheritable(True)
    return sock


def _cannot_listen(config: Config, reason: str) -> BetterCcflareError:
    return BetterCcflareError(f"cannot listen on {config.host}:{config.port}: {reason}.")
