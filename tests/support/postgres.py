"""A real PostgreSQL database per test, for the end-to-end tests: the database package's test
support (``packages/database/tests/postgres_support.py``: the configured server, the one on
127.0.0.1:5432, or a throwaway cluster), loaded from its file so both suites share one.

A test module imports the fixtures it uses (``from .support.postgres import database_url,
postgres_server_url``) and pytest finds them there.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

__all__ = ["database_url", "postgres_server_url"]


def _load_support() -> ModuleType:
    path = Path(__file__).parents[2] / "packages" / "database" / "tests" / "postgres_support.py"
    spec = importlib.util.spec_from_file_location("better_ccflare_postgres_support", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_support = _load_support()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """The server the tests create their databases on, found or started once."""
    with _support.postgres_server() as url:
        yield url


@pytest.fixture
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A new, empty database's URL, dropped (with any connection left to it) afterwards."""
    url: str = _support.create_database(postgres_server_url)
    try:
        yield url
    finally:
        _support.drop_database(postgres_server_url, url)
