"""Housekeeping: ``token-health``, ``reset-stats``, ``clear-history`` and ``compact``.

The destructive commands ask first (``--yes`` skips the question) and show a spinner while the
store works: deleting or compacting a large history can take a while, and writes from a running
server simply wait their turn.
"""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from better_ccflare.core import SystemClock
from better_ccflare.database import RetentionResult, Store
from better_ccflare.proxy.admin import TokenHealthReport, TokenHealthStatus, token_health

from ._context import load, with_store
from ._output import Col, format_ms, format_relative, print_json, print_table, styled

__all__ = ["clear_history", "compact", "reset_stats", "token_health_command"]


@click.command("token-health")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def token_health_command(as_json: bool) -> None:
    """How soon each OAuth login expires.

    Refresh tokens are assumed to last 90 days from the login: warning with 7 days left (or
    after 60 days), critical with 3. Re-login with `account reauth NAME`.
    """
    accounts = with_store(load(), lambda store: store.accounts.list_all())
    now_ms = SystemClock().now_ms()
    reports = [token_health(a, now_ms) for a in sorted(accounts, key=lambda a: a.name)]
    if as_json:
        print_json(reports)
        return
    if not reports:
        click.echo("No accounts yet.")
        return
    print_table(
        [Col("NAME", flex=True), Col("TYPE", flex=True), "STATUS", "LOGIN EXPIRES", "LEFT"],
        [
            [
                r.account_name,
                r.provider,
                _status(r),
                format_relative(r.expires_at_ms, now_ms),
                _left(r),
            ]
            for r in reports
        ],
    )


def _status(report: TokenHealthReport) -> object:
    """The login's health in colour: red when it needs a re-login soon or now."""
    if report.requires_reauth:
        return styled("needs re-login", "bold red")
    if report.status is TokenHealthStatus.NO_REFRESH_TOKEN:
        return "api key (no login)"
    return styled(str(report.status), _STATUS_STYLES.get(report.status, ""))


_STATUS_STYLES = {
    TokenHealthStatus.HEALTHY: "green",
    TokenHealthStatus.WARNING: "yellow",
    TokenHealthStatus.CRITICAL: "red",
    TokenHealthStatus.EXPIRED: "bold red",
}


def _left(report: TokenHealthReport) -> str:
    return format_ms(report.remaining_ms) if report.remaining_ms is not None else "-"


@click.command("reset-stats")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset_stats(yes: bool) -> None:
    """Delete all history and zero the counters.

    Statistics start from zero: every request (and stored body) is deleted and each account's
    request counters are reset, as the dashboard's reset button does.
    """
    if not yes:
        click.confirm("Delete all request history and reset every account's counters?", abort=True)
    deleted = with_store(
        load(), lambda store: store.requests.delete_all(), activity="Resetting statistics"
    )
    click.echo(f"Statistics reset; {deleted} requests deleted.")


class _Cleared(msgspec.Struct, frozen=True, kw_only=True):
    requests_deleted: int
    payloads_deleted: int


@click.command("clear-history")
@click.option(
    "--older-than-days",
    type=click.IntRange(1, 3650),
    help="Delete only requests (and bodies, usage history) older than this many days.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clear_history(older_than_days: int | None, yes: bool) -> None:
    """Delete old (or all) request history.

    Without --older-than-days every request goes, and the accounts' counters are zeroed as by
    reset-stats. With it, only requests (with their stored bodies and usage history) older
    than that many days.
    """
    what = f"older than {older_than_days} days" if older_than_days else "all of it"
    if not yes:
        click.confirm(f"Delete request history ({what})?", abort=True)

    async def clear(store: Store) -> _Cleared:
        if older_than_days is None:
            return _Cleared(requests_deleted=await store.requests.delete_all(), payloads_deleted=0)
        result: RetentionResult = await store.run_retention(older_than_days, older_than_days)
        return _Cleared(
            requests_deleted=result.requests_deleted,
            payloads_deleted=result.payloads_deleted + result.orphan_payloads_deleted,
        )

    cleared = with_store(load(), clear, activity="Deleting request history")
    click.echo(
        f"Deleted {cleared.requests_deleted} requests"
        + (f" and {cleared.payloads_deleted} stored bodies" if cleared.payloads_deleted else "")
        + f" ({what})."
    )


@click.command()
def compact() -> None:
    """Give free disk space back (VACUUM).

    Checkpoints the write-ahead log and rewrites the file without its free pages. A running
    server's writes wait until it is done.
    """
    config = load()
    before = _size(config.db_path)
    with_store(config, lambda store: store.compact(), activity="Compacting the database")
    after = _size(config.db_path)
    click.echo(f"Compacted {config.db_path}: {_mb(before)} -> {_mb(after)}.")


def _size(db_path: Path) -> int:
    """The database and its WAL together: VACUUM moves pages through the WAL first."""
    wal = db_path.with_name(db_path.name + "-wal")
    return sum(p.stat().st_size for p in (db_path, wal) if p.exists())


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"
