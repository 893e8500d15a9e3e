"""Output for people (rich tables, spinners on stderr) and for scripts (JSON on stdout).

Tables and JSON go to stdout; spinners and notes go to stderr, so ``--json`` output can be
piped as it is. A table fits the terminal (``COLUMNS`` when set): the columns marked
:attr:`Col.flex` give up width, the widest first, and lose their ends to an ellipsis (or,
with :attr:`Col.wrap`, wrap onto more lines). When stdout is not a terminal and ``COLUMNS``
is not set, tables are not squeezed: a redirected table keeps every
value whole. Colour (states, statuses) is only sent to a terminal, and never with ``NO_COLOR``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal

import click
import msgspec
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "Col",
    "fitted_widths",
    "format_count",
    "format_ms",
    "format_relative",
    "format_time",
    "print_json",
    "print_table",
    "print_text",
    "spinner",
    "styled",
]

_UNSQUEEZED_WIDTH = 1000
_MIN_FLEX_WIDTH = 6
"""Narrower than this, a shortened value says too little: squeeze the other columns too."""


class Col(msgspec.Struct, frozen=True):
    """A table column: its header and how it gives way when the table is too wide."""

    header: str
    flex: bool = False
    """May be shortened to fit the width (names, models, messages); the others keep theirs."""
    spare: bool = False
    """Flexible, and gets only what the other flexible columns leave (an error message)."""
    wrap: bool = False
    """Shortened by wrapping onto more lines rather than cut with an ellipsis."""
    justify: Literal["left", "right"] = "left"


def print_json(value: object) -> None:
    """``value`` as JSON on stdout (msgspec encodes Structs, enums and tuples)."""
    click.echo(msgspec.json.encode(value).decode())


def styled(text: str, style: str) -> Text:
    """A cell in colour (``"green"``, ``"bold red"``); plain wherever colour is not shown."""
    return Text(text, style=style)


def print_text(text: str) -> None:
    """A note on stdout, wrapped at the width tables fit (so it stays within 80 columns)."""
    _stdout().print(Text(text))


def print_table(
    columns: Sequence[str | Col], rows: Sequence[Sequence[object]], *, title: str | None = None
) -> None:
    """A table on stdout, fitted to the width (see the module). Cells are plain text (a model
    like ``x[1m]`` is not rich markup) unless given as :func:`styled` text."""
    cols = [c if isinstance(c, Col) else Col(c) for c in columns]
    cells = [
        [c if isinstance(c, Text) else Text("" if c is None else str(c)) for c in r] for r in rows
    ]
    console = _stdout()
    natural = [
        max([cell_len(col.header), *(cell_len(row[i].plain) for row in cells)])
        for i, col in enumerate(cols)
    ]
    limits = fitted_widths(cols, natural, console.width - _overhead(len(cols)))
    table = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for col, limit in zip(cols, limits, strict=True):
        table.add_column(
            col.header,
            justify=col.justify,
            max_width=limit,
            no_wrap=not col.wrap,
            overflow="fold" if col.wrap else "ellipsis",
        )
    for row in cells:
        table.add_row(*row)
    console.print(table)


def fitted_widths(cols: Sequence[Col], natural: Sequence[int], room: int) -> list[int | None]:
    """Each column's largest width (``None``: as wide as its content) so that they share
    ``room``. The flexible columns (all, if none is) split what the others leave fairly, the
    spare ones last: a narrow one keeps its whole width, and the widest give way first."""
    if sum(natural) <= room:
        return [None] * len(cols)
    flexible = [i for i, col in enumerate(cols) if col.flex or col.spare]
    flexible = flexible or list(range(len(cols)))
    left = room - sum(w for i, w in enumerate(natural) if i not in flexible)
    spare = [i for i in flexible if cols[i].spare]
    first = [i for i in flexible if not cols[i].spare]
    reserved = sum(min(natural[i], _MIN_FLEX_WIDTH) for i in spare)
    widths: list[int | None] = [None] * len(cols)
    shared = _fair_shares(first, natural, left - reserved)
    shared |= _fair_shares(spare, natural, left - sum(shared.values()))
    for i, width in shared.items():
        widths[i] = width
    return widths


def _fair_shares(group: Sequence[int], natural: Sequence[int], room: int) -> dict[int, int]:
    """Widths for the columns ``group`` (indexes into ``natural``) that share ``room``: the
    narrowest first, each taking its whole width or an even share of what is left."""
    shares: dict[int, int] = {}
    for position, i in enumerate(sorted(group, key=lambda i: natural[i])):
        even = room // (len(group) - position)
        shares[i] = min(natural[i], max(_MIN_FLEX_WIDTH, even))
        room -= shares[i]
    return shares


def _overhead(columns: int) -> int:
    """The width a table spends outside its cells: one space of padding each side between
    columns (none at the edges)."""
    return 2 * max(columns - 1, 0)


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


def format_relative(ms: int | None, now_ms: int) -> str:
    """A time as people glance at it: ``now``, ``40s ago``, ``3m ago``, ``in 2h``, ``5d ago``;
    or ``-``. The largest whole unit only: a glance, not a timestamp."""
    if ms is None:
        return "-"
    delta = round((ms - now_ms) / 1000)
    seconds = abs(delta)
    if seconds == 0:
        return "now"
    units = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
    # Within a sixtieth of a unit counts as one: 59m 59s away reads "in 1h", not "in 59m".
    unit, size = next((u, n) for u, n in units if seconds >= n - n // 60)
    amount = f"{round(seconds / size)}{unit}"
    return f"in {amount}" if delta > 0 else f"{amount} ago"


def format_count(n: int) -> str:
    """A count at a glance: ``950``, ``7.9k``, ``123k``, ``4.5M``."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            value = n / size
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return str(n)


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
    """The console tables go to: the terminal's width (or ``COLUMNS``); a pipe's unbounded."""
    fixed = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(width=None if fixed else _UNSQUEEZED_WIDTH, highlight=False)
