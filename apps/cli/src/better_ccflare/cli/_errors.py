"""How the CLI reports problems: one line on stderr, an exit status that means something.

* 2: the input was wrong (a flag, a name, a setting, the database path); fix it and rerun.
* 1: the command could not finish for a reason outside its input (the network, a server, a
  database that fails its integrity check); rerunning later may help.

No traceback ever reaches the terminal: errors better-ccflare raises on purpose become one of
the two above, and anything else is reported as an unexpected error in one line.
"""

from __future__ import annotations

import click

from better_ccflare.core import BetterCcflareError, InvalidInputError
from better_ccflare.database import CopyError
from better_ccflare.providers import OAuthTransientError

__all__ = ["FIELD_FLAGS", "RuntimeFailure", "UserError", "as_click_error"]


class UserError(click.ClickException):
    """A problem the user can fix: click prints ``Error: <message>`` on stderr, exit status 2."""

    exit_code = 2


class RuntimeFailure(click.ClickException):
    """The command could not finish for a reason outside its input: exit status 1."""

    exit_code = 1


FIELD_FLAGS: dict[str, str] = {
    "name": "NAME",
    "api_key": "--api-key",
    "endpoint": "--endpoint",
    "priority": "--priority",
    "model_mappings": "--model-map",
    "vertex_project_id": "--project-id",
    "vertex_region": "--region",
    "credentials": "the login",
    "custom_endpoint": "--endpoint",
    "project_id": "--project-id",
    "region": "--region",
    "maxConcurrent": "--max-concurrent",
    "budgetDailyUsd": "--budget-daily",
    "budgetWeeklyUsd": "--budget-weekly",
    "budgetMonthlyUsd": "--budget-monthly",
    "models": "--models",
}
"""Fields of the shared account setup (by attribute, and by the name a provider declares) and
of a key's limits, named as they are typed on the command line."""


def as_click_error(exc: BetterCcflareError) -> click.ClickException:
    """The one-line error for ``exc``, naming the flag at fault for invalid input."""
    if isinstance(exc, InvalidInputError):
        return UserError(f"{FIELD_FLAGS.get(exc.field, exc.field)}: {exc.message}")
    if isinstance(exc, OAuthTransientError | CopyError):
        return RuntimeFailure(str(exc))
    return UserError(str(exc))
