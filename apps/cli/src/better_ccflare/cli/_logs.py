"""``better-ccflare logs [-n N] [-f] [--json]``: the server's log file, read back.

The server writes one JSON object a line to ``app.log`` in the log directory (rotated to
``app.log.1`` ...), whatever format it prints on its terminal; this reads it with the logger
package's tail reader, the one ``/api/logs/history`` uses, so it works whether or not a server
is running. ``-f`` polls the file and prints what is new, as ``tail -f`` does.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
import msgspec

from better_ccflare.logger import LogEvent, read_log_tail

from ._context import load, run_async
from ._output import format_time

__all__ = ["logs"]

_POLL_S = 0.5
_FOLLOW_WINDOW = 1000
"""Events read back per poll while following: far more than a server writes in one poll."""


@click.command()
@click.option(
    "-n",
    "--lines",
    "limit",
    type=click.IntRange(1, 100_000),
    default=50,
    show_default=True,
    help="How many of the last events to print.",
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, for scripts.")
def logs(limit: int, follow: bool, as_json: bool) -> None:
    """Print the server's most recent log events, oldest first."""
    log_dir = load().log_dir
    shown = read_log_tail(log_dir, limit)
    for event in shown:
        _print(event, as_json=as_json)
    if not follow:
        if not shown:
            click.echo(f"No log events in {log_dir} yet.", err=True)
        return
    try:
        run_async(_follow(log_dir, shown[-1] if shown else None, as_json=as_json))
    except KeyboardInterrupt:
        sys.exit(130)


async def _follow(log_dir: Path, last: LogEvent | None, *, as_json: bool) -> None:
    while True:
        await asyncio.sleep(_POLL_S)
        events = await asyncio.to_thread(read_log_tail, log_dir, _FOLLOW_WINDOW)
        for event in _after(events, last):
            _print(event, as_json=as_json)
            last = event


def _after(events: list[LogEvent], last: LogEvent | None) -> list[LogEvent]:
    """The events written after ``last``: those following it, or, when it has left the window
    (the file rotated, or a burst), those stamped later."""
    if last is None:
        return events
    for index in range(len(events) - 1, -1, -1):
        if events[index] == last:
            return events[index + 1 :]
    return [e for e in events if e.ts_ms > last.ts_ms]


def _print(event: LogEvent, *, as_json: bool) -> None:
    if as_json:
        click.echo(msgspec.json.encode(event).decode())
        return
    click.echo(f"{format_time(event.ts_ms)} {event.level:<5} [{event.logger}] {event.msg}")
    if event.exc:
        click.echo(event.exc)
