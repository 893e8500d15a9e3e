"""The ``better-ccflare`` command.

``main`` is loaded on first use, so that the console script (``_entry``) can answer
``better-ccflare statusline`` without importing every other command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._main import main

__version__ = "0.1.0"

__all__ = ["main"]


def __getattr__(name: str) -> object:
    if name == "main":
        from ._main import main  # noqa: PLC0415 (loaded on first use, see above)

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
