"""Asking for what the flags left out, and refusing when nobody is there to answer.

A script that leaves out a required flag must get an error naming the flag, not a prompt that
reads end-of-file and prints "Aborted!" with the status of a failure. When input is not a
terminal and runs out, the missing flag is a usage error (exit status 2); at a terminal, Ctrl-C
or Ctrl-D still abort as usual.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ._errors import UserError

__all__ = ["ask"]


def ask(flag: str, text: str, **options: Any) -> Any:
    """``click.prompt(text, **options)``, or a :class:`UserError` naming ``flag`` when input is
    not a terminal and has nothing (more) to give."""
    try:
        return click.prompt(text, **options)
    except click.Abort:
        if sys.stdin.isatty():
            raise
        raise UserError(
            f"missing {flag}: give it on the command line (input is not a terminal, so it "
            "cannot be asked for)."
        ) from None
