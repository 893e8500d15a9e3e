"""Entry point of the ``better-ccflare`` command.

Errors a user can fix (a bad setting, an unreadable key, a broken database) are printed as one
line on stderr with exit status 2, failures outside the input with exit status 1 (see
``_errors``); no traceback reaches the terminal, not even for a bug.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

import click
import msgspec

from better_ccflare.core import BetterCcflareError, Config, SettingSource, SourceKind
from better_ccflare.server import serve as serve_forever

from ._accounts import account
from ._agents import agent
from ._analytics import requests, stats
from ._api_keys import api_key
from ._config_show import config
from ._context import load
from ._db_copy import db
from ._doctor import doctor
from ._errors import RuntimeFailure, UserError
from ._logs import logs
from ._maintenance import clear_history, compact, reset_stats, token_health_command
from ._statusline import statusline
from ._strategy import strategy

__all__ = ["main"]


class _Cli(click.Group):
    """The command group, turning an unexpected exception into one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            raise RuntimeFailure(
                f"unexpected {type(exc).__name__}: {exc}. This is a bug in better-ccflare; "
                "please report it with the command you ran."
            ) from exc


def _documentation_url() -> str:
    """The ``Documentation`` Project-URL of the installed distribution: one source for the
    address, which the wheel's metadata carries to wherever the command is installed."""
    for entry in metadata("better-ccflare").get_all("Project-URL") or ():
        label, _, url = entry.partition(",")
        if label.strip() == "Documentation":
            return url.strip()
    return "docs/cli.md in the source tree"


@click.group(
    cls=_Cli,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    # \b keeps click from wrapping the address across two lines (it would no longer click).
    epilog=f"\b\nDocumentation: {_documentation_url()}",
)
@click.version_option(package_name="better-ccflare", prog_name="better-ccflare")
def main() -> None:
    """A self-hosted load-balancing proxy for Claude accounts.

    Start the server with `better-ccflare serve`; without a command this help is shown (exit
    status 2). Every read command takes --json for scripts. Exit status: 0 done, 1 failed
    (network, server, database), 2 bad input.
    """


for _command in (
    account,
    api_key,
    agent,
    strategy,
    config,
    stats,
    requests,
    token_health_command,
    doctor,
    logs,
    reset_stats,
    clear_history,
    compact,
    db,
    statusline,
):
    main.add_command(_command)


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1; BETTER_CCFLARE_HOST).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default 8080; PORT).")
@click.option("--ssl-key", type=click.Path(dir_okay=False, path_type=Path), help="TLS key file.")
@click.option("--ssl-cert", type=click.Path(dir_okay=False, path_type=Path), help="TLS cert file.")
def serve(host: str | None, port: int | None, ssl_key: Path | None, ssl_cert: Path | None) -> None:
    """Start the proxy server.

    Ctrl-C or SIGTERM stops it cleanly: streams in flight get time to finish and every queued
    database write is flushed.
    """
    config = _with_flags(load(), host=host, port=port, ssl_key_path=ssl_key, ssl_cert_path=ssl_cert)
    if (config.ssl_key_path is None) != (config.ssl_cert_path is None):
        raise UserError(
            "TLS needs both --ssl-key and --ssl-cert (or SSL_KEY_PATH and SSL_CERT_PATH)."
        )
    _run(serve_forever(config))


def _with_flags(config: Config, **flags: object) -> Config:
    """Command-line flags win over every other source, and say so in ``config show``."""
    given = {name: value for name, value in flags.items() if value is not None}
    if not given:
        return config
    sources = dict(config.sources)
    for name in given:
        flag = "--" + name.removesuffix("_path").replace("_", "-")
        sources[name] = SettingSource(SourceKind.COMMAND_LINE, flag)
    return msgspec.structs.replace(config, **given, sources=sources)


def _run(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` on the fastest available event loop, mapping user errors to one line."""
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up, absent on Windows

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(work)
    except BetterCcflareError as exc:
        raise UserError(str(exc)) from exc
    except KeyboardInterrupt:
        sys.exit(130)
