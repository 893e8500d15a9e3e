"""Live request events for dashboards: a fan-out of every request the proxy records.

The proxy publishes each :class:`RequestRecord` as it queues it for the database; subscribers
(the ``/api/requests/stream`` SSE endpoint) each get their own bounded queue. Publishing never
blocks and never fails the request: a subscriber that falls behind loses its oldest events
rather than slowing the proxy down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from better_ccflare.core import RequestRecord

__all__ = ["RequestEvents"]


class RequestEvents:
    """Publish/subscribe for recorded requests, on one event loop."""

    __slots__ = ("_queue_size", "_subscribers")

    def __init__(self, *, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[RequestRecord]] = set()

    def publish(self, record: RequestRecord) -> None:
        """Hand ``record`` to every subscriber; costs nothing when nobody listens."""
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(record)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncGenerator[asyncio.Queue[RequestRecord]]:
        """A queue receiving every record published while the context is open."""
        queue: asyncio.Queue[RequestRecord] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
