"""``better-ccflare doctor``: is this installation sound, and is a server running?

Each check reports what it found and, when something is wrong, what to do. The exit status is
1 when any check fails, so the command can gate scripts. A server that is not running is not a
failure (the CLI works without one); it is reported either way.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import httpx2
import msgspec

from better_ccflare.core import BetterCcflareError, Config, SystemClock
from better_ccflare.database import SchemaStatus, Store

from ._context import load, run_async
from ._errors import RuntimeFailure
from ._output import Col, format_time, print_json, print_table, print_text, spinner, styled

__all__ = ["doctor"]

_HEALTH_TIMEOUT_S = 1.5


class Check(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    ok: bool
    detail: str


class ServerProbe(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    reachable: bool
    status_code: int | None = None
    detail: str


class Report(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    data_dir: str
    db_path: str
    db_size_bytes: int | None
    schema_version: int | None
    applied_migrations: tuple[str, ...]
    pending_migrations: tuple[str, ...]
    backend: str | None
    accounts: int | None
    server: ServerProbe
    checks: tuple[Check, ...]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def doctor(as_json: bool) -> None:
    """Check the installation and the server.

    Checks that the data directory is writable, the database opens, passes SQLite's integrity
    check and has every migration, and whether a server answers /health on the configured host
    and port. Exit status 1 when a check fails (a server that is not running is not a failure).
    """
    config = load()
    with spinner("Checking the installation"):
        report = _examine(config)
    if as_json:
        print_json(report)
    else:
        _print(report)
    if not report.ok:
        raise RuntimeFailure("doctor found problems; see the checks marked FAIL above.")


class _Findings(msgspec.Struct, kw_only=True):
    """What the store said (gathered on the event loop)."""

    checks: list[Check]
    status: SchemaStatus | None = None
    accounts: int | None = None


def _examine(config: Config) -> Report:
    found = run_async(_examine_store(config, _Findings(checks=[])))
    # After opening the store, which creates the directory on a first run.
    found.checks.insert(0, _data_dir_check(config.config_dir))
    server = run_async(_probe_server(config))
    status = found.status
    return Report(
        ok=all(check.ok for check in found.checks),
        data_dir=str(config.config_dir),
        db_path=str(config.db_path),
        db_size_bytes=config.db_path.stat().st_size if config.db_path.exists() else None,
        schema_version=status.version if status else None,
        applied_migrations=status.applied if status else (),
        pending_migrations=status.pending if status else (),
        backend=status.backend if status else None,
        accounts=found.accounts,
        server=server,
        checks=tuple(found.checks),
    )


async def _examine_store(config: Config, found: _Findings) -> _Findings:
    try:
        async with await Store.from_config(config) as store:
            found.checks.append(Check(name="database opens", ok=True, detail=str(config.db_path)))
            found.checks.append(_integrity_check(await store.check_integrity()))
            found.status = await store.schema_status()
            found.checks.append(_schema_check(found.status))
            found.accounts = len(await store.accounts.list_all())
    except BetterCcflareError as exc:
        found.checks.append(Check(name="database opens", ok=False, detail=str(exc)))
    return found


def _data_dir_check(path: Path) -> Check:
    name = "data directory writable"
    if not path.is_dir():
        return Check(name=name, ok=False, detail=f"{path} does not exist and could not be created")
    if not os.access(path, os.W_OK | os.X_OK):
        return Check(
            name=name, ok=False, detail=f"{path} is not writable by this user; fix its permissions"
        )
    return Check(name=name, ok=True, detail=str(path))


def _integrity_check(problems: tuple[str, ...]) -> Check:
    if not problems:
        return Check(name="database integrity", ok=True, detail="ok")
    shown = "; ".join(problems[:3]) + (
        f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    )
    return Check(
        name="database integrity",
        ok=False,
        detail=f"{shown}. Stop the server, back up the file, and restore from a backup.",
    )


def _schema_check(status: SchemaStatus) -> Check:
    if status.pending:
        return Check(
            name="schema up to date",
            ok=False,
            detail=f"pending migrations: {', '.join(status.pending)}",
        )
    return Check(
        name="schema up to date",
        ok=True,
        detail=f"version {status.version} ({status.backend})",
    )


class _Readiness(msgspec.Struct, frozen=True):
    ready: bool = True
    """Absent from servers before the split, whose 200 meant ready."""


def _says_ready(response: httpx2.Response) -> bool:
    try:
        return msgspec.json.decode(response.content, type=_Readiness).ready
    except msgspec.DecodeError:  # not JSON, or not shaped like ours (ValidationError too)
        return False


async def _probe_server(config: Config) -> ServerProbe:
    """GET ``/health`` on the configured host and port; a wildcard address means this host."""
    url = f"{config.local_url}/health"
    # A local server's certificate is usually self-signed; only its liveness is read here.
    async with httpx2.AsyncClient(
        timeout=_HEALTH_TIMEOUT_S,
        verify=False,
        trust_env=False,
    ) as client:
        try:
            response = await client.get(url)
        except httpx2.HTTPError as exc:
            detail = (
                f"no server answers ({type(exc).__name__}); start one with `better-ccflare serve`"
            )
            return ServerProbe(url=url, reachable=False, detail=detail)
    if response.status_code in (200, 503):
        # /health answers 200 while the server runs and says in ``ready`` whether an account
        # can serve; servers before the liveness/readiness split answered 503 when none could.
        ready = response.status_code == 200 and _says_ready(response)
        pool = "can serve" if ready else "is running but no account can serve"
        return ServerProbe(url=url, reachable=True, status_code=response.status_code, detail=pool)
    return ServerProbe(
        url=url,
        reachable=True,
        status_code=response.status_code,
        detail=f"something answers with HTTP {response.status_code}; is it better-ccflare?",
    )


def _print(report: Report) -> None:
    print_table(
        ["CHECK", "RESULT", Col("DETAIL", flex=True, wrap=True)],
        [
            [c.name, styled("ok", "green") if c.ok else styled("FAIL", "bold red"), c.detail]
            for c in report.checks
        ],
    )
    server = report.server
    print_text(f"Server at {server.url}: {server.detail}.")
    if report.accounts is not None:
        click.echo(
            f"Accounts: {report.accounts}. Checked at {format_time(SystemClock().now_ms())} UTC."
        )
