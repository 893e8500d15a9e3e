"""Server-Sent Event streams that survive idle proxies in between.

The live request stream and the live log both send one message per item and a comment line
whenever ``KEEPALIVE_S`` pass without one, so a reverse proxy never closes a quiet stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

from litestar.response import ServerSentEventMessage

__all__ = ["KEEPALIVE_S", "with_keepalive"]

KEEPALIVE_S = 15.0

_T = TypeVar("_T")


async def with_keepalive(
    next_item: Callable[[], Awaitable[_T]], encode: Callable[[_T], str]
) -> AsyncGenerator[ServerSentEventMessage]:
    """An SSE message per item, and a comment whenever ``KEEPALIVE_S`` pass without one (so
    proxies in between do not close an idle stream); ends when ``next_item`` raises
    ``StopAsyncIteration``. ``next_item`` must survive being cancelled on a timeout."""
    while True:
        try:
            item = await asyncio.wait_for(next_item(), KEEPALIVE_S)
        except TimeoutError:
            yield ServerSentEventMessage(comment="keepalive")
            continue
        except StopAsyncIteration:
            return
        yield ServerSentEventMessage(data=encode(item))
