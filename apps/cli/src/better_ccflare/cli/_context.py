"""What every CLI command needs: the configuration and a short-lived store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from better_ccflare.core import BetterCcflareError, Config, load_config
from better_ccflare.database import Store

from ._errors import UserError

__all__ = ["load", "with_store"]

_T = TypeVar("_T")


def load() -> Config:
    """The configuration, or a one-line error naming the bad setting."""
    try:
        return load_config()
    except BetterCcflareError as exc:
        raise UserError(str(exc)) from exc


def with_store(config: Config, work: Callable[[Store], Awaitable[_T]]) -> _T:
    """Open the store, run ``work``, close it (flushing every write); errors become one line."""

    async def main() -> _T:
        async with await Store.from_config(config) as store:
            return await work(store)

    try:
        return asyncio.run(main())
    except BetterCcflareError as exc:
        raise UserError(str(exc)) from exc
