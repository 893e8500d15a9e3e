"""The ``better-ccflare`` command."""

from ._main import main

__version__ = "0.1.0"

__all__ = ["main"]
