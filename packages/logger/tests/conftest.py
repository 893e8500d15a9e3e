from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from better_ccflare.logger import reset_logging


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    """Every test starts and ends with the ``better_ccflare`` logger as the process had it."""
    reset_logging()
    yield
    reset_logging()


@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger("better_ccflare.test")
