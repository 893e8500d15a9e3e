"""What every CLI command needs: the configuration and a short-lived store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from better_ccflare.core import BetterCcflareError, Config, load_config
from better_ccflare.database import Store

from ._errors import as_click_error
from ._output import spinner

__all__ = ["load", "run_async", "with_store"]

_T = TypeVar("_T")


def load() -> Config:
    """The configuration, or a one-line error naming the bad setting."""
    try:
        return load_config()
    except BetterCcflareError as exc:
        raise as_click_error(exc) from exc


def with_store(
    config: Config,
    work: Callable[[Store], Awaitable[_T]],
    *,
    activity: str = "Opening the database",
) -> _T:
    """Open the store, run ``work``, close it (flushing every write); errors become one line.

    A spinner naming ``activity`` runs on stderr meanwhile: opening may migrate (and, for an
    adopted reference database, encrypt and vacuum), which can take a while on a big file.
    ``work`` must not prompt; ask before calling this.
    """

    async def main() -> _T:
        async with await Store.from_config(config) as store:
            return await work(store)

    with spinner(f"{activity}…"):
        return run_async(main())


def run_async(work: Awaitable[_T]) -> _T:
    """Run ``work`` to completion; errors better-ccflare raises become one-line errors."""

    async def main() -> _T:
        return await work

    try:
        return asyncio.run(main())
    except BetterCcflareError as exc:
        raise as_click_error(exc) from exc
