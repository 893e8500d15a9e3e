"""Entry point of the ``better-ccflare`` command.

Errors a user can fix (a bad setting, an unreadable key, a broken database) are printed as one
line on stderr with exit status 2; no traceback reaches the terminal.
"""

from __future__ import annotations

import asyncio

import click

from better_ccflare.core import BetterCcflareError, load_config
from better_ccflare.server import preflight

__all__ = ["main"]


class UsageError(click.ClickException):
    """A problem the user can fix; click prints ``Error: <message>`` and exits with 2."""

    exit_code = 2


@click.group(invoke_without_command=True)
@click.version_option(package_name="better-ccflare", prog_name="better-ccflare")
@click.pass_context
def main(ctx: click.Context) -> None:
    """A self-hosted load-balancing proxy for Claude accounts.

    Without a command, starts the server (the same as ``better-ccflare serve``).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


@main.command()
def serve() -> None:
    """Start the proxy server.

    Checks the configuration, opens and migrates the database, and reports. The proxy itself
    arrives with the next release; until then the command exits after the checks.
    """
    try:
        config = load_config()
        report = asyncio.run(preflight(config))
    except BetterCcflareError as exc:
        raise UsageError(str(exc)) from exc
    click.echo(
        f"better-ccflare: configuration OK; database {report.db_path} at schema version "
        f"{report.schema_version} ({report.backend}), {report.accounts} account(s); "
        f"logs in {report.log_dir}."
    )
    click.echo("The proxy server is not part of this release yet; nothing more to start.")
