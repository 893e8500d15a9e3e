"""The ``cli`` fixture: a runner bound to a fresh data directory per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cli_support import Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)
