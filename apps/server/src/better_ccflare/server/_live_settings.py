"""Settings that change while the server runs: from the API, or from the config file.

The config file is the one place such changes live, so they survive a restart and every
process sharing the file agrees. The API writes it through :meth:`LiveConfig.update`; the CLI
(``better-ccflare strategy set``) or an editor writes it directly, and the server notices
through :meth:`LiveConfig.reload_if_changed`, which a periodic job calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from better_ccflare.core import (
    BetterCcflareError,
    Config,
    reload_file_settings,
    write_file_settings,
)

__all__ = ["LiveConfig"]

_log = logging.getLogger("better_ccflare.server")


class LiveConfig:
    """The configuration in force; ``on_change(old, new)`` applies a change to the service."""

    __slots__ = ("_config", "_lock", "_mtime_ns", "_on_change")

    def __init__(self, config: Config, on_change: Callable[[Config, Config], None]) -> None:
        self._config = config
        self._on_change = on_change
        self._mtime_ns = self._stat()
        self._lock = asyncio.Lock()

    def current(self) -> Config:
        return self._config

    async def update(self, changes: Mapping[str, object]) -> Config:
        async with self._lock:
            new = await asyncio.to_thread(write_file_settings, self._config, changes)
            self._mtime_ns = await asyncio.to_thread(self._stat)
            self._set(new)
            return new

    async def reload_if_changed(self) -> None:
        """Re-read the config file when it changed since we last read or wrote it.

        A file that became invalid is reported in the log and ignored: the server keeps the
        settings it has rather than stopping over a typo.
        """
        async with self._lock:
            mtime = await asyncio.to_thread(self._stat)
            if mtime == self._mtime_ns:
                return
            self._mtime_ns = mtime
            try:
                new = await asyncio.to_thread(reload_file_settings, self._config)
            except BetterCcflareError as exc:
                _log.warning("Ignoring the changed config file: %s", exc)
                return
            self._set(new)

    def _set(self, new: Config) -> None:
        old, self._config = self._config, new
        if old != new:
            self._on_change(old, new)

    def _stat(self) -> tuple[int, int, int] | None:
        """The file's identity: writers replace it atomically, so a write changes the inode
        even when it lands within the same timestamp tick as the previous one."""
        try:
            st = self._config.config_path.stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size
