"""Output for people (rich tables, spinners on stderr) and for scripts (JSON on stdout).

Tables and JSON go to stdout; spinners and notes go to stderr, so ``--json`` output can be
piped as it is. When stdout is not a terminal, tables are not squeezed to 80 columns: a
redirected table keeps every value whole, one row per line.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import click
import msgspec
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["format_ms", "format_time", "print_json", "print_table", "spinner"]

_UNSQUEEZED_WIDTH = 1000


def print_json(value: object) -> None:
    """``value`` as JSON on stdout (msgspec encodes Structs, enums and tuples)."""
    click.echo(msgspec.json.encode(value).decode())


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[object]], *, title: str | None = None
) -> None:
    """A table on stdout. Cells are plain text: a model like ``x[1m]`` is not rich markup."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    _stdout().print(table)


@contextmanager
def spinner(message: str) -> Generator[None]:
    """A spinner on stderr while the block runs (nothing at all when stderr is not a terminal)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(message):
        yield


def format_time(ms: int | None) -> str:
    """An epoch-milliseconds time as ``YYYY-MM-DD HH:MM:SS`` UTC, or ``-``."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_ms(ms: float | None) -> str:
    """A duration for people: ``850 ms``, ``3.2 s``, ``4 h 10 min``, ``12 d 3 h``; or ``-``."""
    if ms is None:
        return "-"
    sign, ms = ("-" if ms < 0 else ""), abs(ms)
    if ms < 1000:
        return f"{sign}{ms:.0f} ms"
    if ms < 60_000:
        return f"{sign}{ms / 1000:.1f} s"
    minutes = int(ms // 60_000)
    if minutes < 60:
        return f"{sign}{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{sign}{days} d {hours} h"


def _stdout() -> Console:
    terminal = sys.stdout.isatty()
    return Console(width=None if terminal else _UNSQUEEZED_WIDTH, highlight=False)
