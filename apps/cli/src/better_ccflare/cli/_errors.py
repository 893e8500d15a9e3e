"""How the CLI reports problems a user can fix."""

from __future__ import annotations

import click

__all__ = ["UserError"]


class UserError(click.ClickException):
    """A problem the user can fix: click prints ``Error: <message>`` on stderr, exit status 2."""

    exit_code = 2
