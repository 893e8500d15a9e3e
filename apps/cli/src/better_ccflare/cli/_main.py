"""Entry point of the ``better-ccflare`` command (filled in by the CLI issue)."""

from __future__ import annotations

import click

__all__ = ["main"]


@click.group(invoke_without_command=True)
@click.pass_context
def main(ctx: click.Context) -> None:
    """A self-hosted load-balancing proxy for Claude accounts."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


@main.command()
def serve() -> None:
    """Start the proxy server."""
    click.echo("better-ccflare: the server arrives with the proxy issue.")
