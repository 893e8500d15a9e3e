"""Fixtures shared by the database tests: a real database per test, never a mock.

Every test that goes through the ``store`` fixture (or ``store_target``) runs twice: on a SQLite
file and on a fresh database of a real PostgreSQL server (see ``postgres_support``). Tests that
read SQLite's file themselves (they take ``db_path``) or its statement trace (``sql_trace``),
and tests marked ``sqlite_only`` (SQLite's own mechanisms: its writer thread, its rollups, the
reference-schema migration), run on SQLite alone.

Every test also checks that no SQL ran on a thread with a running event loop: the store must do
all SQLite work on its own threads.
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from better_ccflare.core import FakeClock
from better_ccflare.database import SecretKey, Store

from .postgres_support import create_database, drop_database, postgres_server
from .tracing import SqlTrace

BACKENDS = ("sqlite", "postgres")
_SQLITE_FIXTURES = {"db_path", "sql_trace"}
"""A test asking for one of these reads SQLite's file or trace itself."""


def pytest_report_header() -> str:
    return (
        f"SQLite {sqlite3.sqlite_version}, sqlite-utils {version('sqlite-utils')}, "
        f"asyncpg {version('asyncpg')}"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: tests SQLite's own mechanisms; not run on PostgreSQL"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    own = set(inspect.signature(metafunc.function).parameters)
    sqlite_only = metafunc.definition.get_closest_marker("sqlite_only") or own & _SQLITE_FIXTURES
    metafunc.parametrize("backend", ["sqlite"] if sqlite_only else BACKENDS)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """The PostgreSQL server the tests create their databases on, found or started once."""
    with postgres_server() as url:
        yield url


@pytest.fixture
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A new PostgreSQL database's URL, for tests that open several stores on it (dropped
    afterwards)."""
    url = create_database(postgres_server_url)
    try:
        yield url
    finally:
        drop_database(postgres_server_url, url)


@pytest.fixture
def store_target(backend: str, request: pytest.FixtureRequest) -> Iterator[Path | str]:
    """What :meth:`Store.open` opens for this test: ``db_path``, or a new PostgreSQL database's
    URL (dropped afterwards)."""
    if backend == "sqlite":
        yield request.getfixturevalue("db_path")
        return
    server: str = request.getfixturevalue("postgres_server_url")
    url = create_database(server)
    try:
        yield url
    finally:
        drop_database(server, url)


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
async def store(store_target: Path | str, key: SecretKey, clock: FakeClock) -> AsyncIterator[Store]:
    opened = await Store.open(store_target, key=key, clock=clock)
    yield opened
    await opened.close()
