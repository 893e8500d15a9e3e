"""Fixtures shared by the database tests: a real SQLite file per test, never a mock.

Every test also checks that no SQL ran on a thread with a running event loop: the store must do
all SQLite work on its own threads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from better_ccflare.core import FakeClock
from better_ccflare.database import SecretKey, Store

from .tracing import SqlTrace


def pytest_report_header() -> str:
    return f"SQLite {sqlite3.sqlite_version}, sqlite-utils {version('sqlite-utils')}"


@pytest.fixture(autouse=True)
def sql_trace(monkeypatch: pytest.MonkeyPatch) -> Iterator[SqlTrace]:
    """Instrument ``sqlite3.connect`` so each connection reports the statements it runs."""
    trace = SqlTrace()
    real_connect = sqlite3.connect  # noqa: TID251 (wrapped to trace statements, not to open files)

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = real_connect(*args, **kwargs)
        connection.set_trace_callback(trace.record)
        return connection

    monkeypatch.setattr(sqlite3, "connect", connect)
    yield trace
    assert trace.on_event_loop == [], "SQLite was called on the event loop thread"


@pytest.fixture
def key() -> SecretKey:
    return SecretKey.generate()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "config" / "better-ccflare.db"


@pytest.fixture
async def store(db_path: Path, key: SecretKey, clock: FakeClock) -> AsyncIterator[Store]:
    opened = await Store.open(db_path, key=key, clock=clock)
    yield opened
    await opened.close()
