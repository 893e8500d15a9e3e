"""The ``better-ccflare`` console script.

Claude Code runs ``better-ccflare statusline`` after every turn, so that one command starts
without loading the others (the server, the web framework, the HTTP clients: over a second of
imports); every other invocation goes to the click group in ``_main``.
"""

from __future__ import annotations

import os
import sys

__all__ = ["run"]


def run() -> None:
    if sys.argv[1:] == ["statusline"]:
        from ._statusline import run_statusline  # noqa: PLC0415 (the point of this module)

        print(run_statusline(sys.stdin, os.environ))
        return
    from ._main import main  # noqa: PLC0415 (every other command: the full CLI, loaded here)

    main()
