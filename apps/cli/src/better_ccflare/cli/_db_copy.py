"""``db copy``: move a SQLite database (ours, or the reference's) into PostgreSQL.

The copy itself and its checks are the database package's
(:func:`~better_ccflare.database.copy_sqlite_to_postgres`); this command picks the source and
the target from its flags or the configuration, loads the key, and reports table by table. The
target is only ever shown without its password.
"""

from __future__ import annotations

from pathlib import Path

import click

from better_ccflare.core import BetterCcflareError, redacted_url
from better_ccflare.database import (
    CopyReport,
    TableCopy,
    copy_sqlite_to_postgres,
    load_or_create_key,
)

from ._context import load, run_async
from ._errors import UserError, as_click_error

__all__ = ["db"]


@click.group()
def db() -> None:
    """Move the database between backends."""


@db.command("copy")
@click.option(
    "--from",
    "source",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The SQLite file to copy (default: the configured one, BETTER_CCFLARE_DB_PATH).",
)
@click.option(
    "--to",
    "target",
    metavar="URL",
    help="The PostgreSQL database, postgresql://USER:PASSWORD@HOST:PORT/NAME "
    "(default: DATABASE_URL).",
)
def copy(source: Path | None, target: str | None) -> None:
    """Copy a SQLite database into PostgreSQL, then check the copy.

    The source is opened as `serve` opens it (a reference database is migrated first) and the
    target's tables are created if missing. Credentials are copied encrypted: every instance
    over the target needs this machine's key (BETTER_CCFLARE_SECRET_KEY or the key file).
    Safe to re-run: rows already in the target are kept as they are and only missing ones are
    added. Stop the server on the SQLite file first, so nothing changes during the copy.
    """
    config = load()
    source = source or config.db_path
    target = target or config.database_url
    if target is None:
        raise UserError("Give the target database with --to postgresql://... or DATABASE_URL.")
    try:
        key = load_or_create_key(
            config.config_dir, config.secret_key, env_source=str(config.source_of("secret_key"))
        )
    except BetterCcflareError as exc:
        raise as_click_error(exc) from exc
    click.echo(f"Copying {source} into {redacted_url(target)}")
    report = run_async(copy_sqlite_to_postgres(source, target, key=key, on_table=_tell))
    click.echo(_summary(report))


def _tell(copied: TableCopy) -> None:
    parts = [
        f"{copied.source_rows} rows",
        f"{copied.added} added",
        f"{copied.already_there} already there",
    ]
    if copied.skipped:
        parts.append(f"{copied.skipped} skipped (payloads of deleted requests)")
    click.echo(f"  {copied.table}: {', '.join(parts)}")


def _summary(report: CopyReport) -> str:
    kept = (
        f"; {report.accounts_kept} already there were kept as they are"
        if report.accounts_kept
        else ""
    )
    return (
        "Done: every row is in PostgreSQL, and the credentials of "
        f"{report.accounts_verified} added account(s) read back equal{kept}."
    )
