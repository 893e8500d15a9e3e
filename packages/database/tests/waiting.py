"""Waiting in a test for what another process does (the writer process, a second store): no
event tells this one, so the test polls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Poll ``check`` until it holds, for ``timeout_s`` at most."""
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 (another process's doing, no event here)
            await asyncio.sleep(0.01)


def holds(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """A plain ``check`` as :func:`eventually` takes it."""

    async def holding() -> bool:
        return check()

    return holding
