"""A record of every SQL statement run during a test, and of the thread that ran it."""

from __future__ import annotations

import asyncio
import threading


class SqlTrace:
    """Fed by ``sqlite3`` trace callbacks; flags statements run where an event loop is running."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, str]] = []
        self.on_event_loop: list[str] = []

    def record(self, statement: str) -> None:
        self.statements.append((threading.current_thread().name, statement))
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self.on_event_loop.append(statement)
