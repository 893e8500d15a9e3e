"""Live request events: a fan-out of every request the proxy starts and records, and the count
in flight.

The proxy publishes a :class:`RequestStart` when a request's account is chosen, and each
:class:`RequestRecord` as it queues it for the database, so a dashboard can show a request in
flight until its record replaces it. Dashboards
(the ``/api/requests/stream`` SSE endpoint) subscribe with their own bounded queue; publishing
never blocks and never fails the request: a subscriber that falls behind loses its oldest
events rather than slowing the proxy down. Listeners (the Prometheus metrics) are called
synchronously with the record and its :class:`RequestTimings`, which the history does not keep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable

import msgspec

from better_ccflare.core import RequestRecord

__all__ = ["RequestEvent", "RequestEvents", "RequestListener", "RequestStart", "RequestTimings"]


class RequestStart(msgspec.Struct, frozen=True, kw_only=True):
    """A request that began and has no record yet (the stream's ``start`` event)."""

    id: str
    """The id its record will have."""
    timestamp_ms: int
    method: str
    path: str
    model: str | None
    """The model it is routed with (after an agent preference), as the client named it."""
    account_id: str | None
    """The account tried first; ``None`` when none can serve."""


RequestEvent = RequestStart | RequestRecord
"""What a subscriber receives: a request's start, then its record."""


class RequestTimings(msgspec.Struct, frozen=True, kw_only=True):
    """Where a request's time went, in seconds of ``time.perf_counter()``.

    The upstream fields describe the attempt whose response was forwarded to the client; they
    are ``None`` when the proxy answered itself (nothing could serve, or every attempt failed).
    """

    total_s: float
    """From the request's arrival to its record."""
    upstream_first_byte_s: float | None = None
    """From sending the forwarded attempt to its response headers (an error body included)."""
    upstream_s: float | None = None
    """From sending the forwarded attempt to the end of its body."""


RequestListener = Callable[[RequestRecord, RequestTimings], None]
"""Called with every published record; it runs on the hot path, so it must take microseconds."""

_NO_TIMINGS = RequestTimings(total_s=0.0)


class RequestEvents:
    """Publish/subscribe for recorded requests, on one event loop."""

    __slots__ = ("_listeners", "_queue_size", "_subscribers", "in_flight", "subscribed")

    def __init__(self, *, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[RequestEvent]] = set()
        self._listeners: tuple[RequestListener, ...] = ()
        self.in_flight = 0
        """Proxied requests started and not yet ended: the pipeline adds and subtracts one
        itself (a method call each way would be two more calls per request on the hot path)."""
        self.subscribed = False
        """Whether anyone subscribed: the pipeline builds a start event only then."""

    def publish(self, record: RequestRecord, timings: RequestTimings = _NO_TIMINGS) -> None:
        """Hand ``record`` to every listener and subscriber; costs nothing when nobody listens."""
        for listener in self._listeners:
            listener(record, timings)
        if self._subscribers:
            self._fan_out(record)

    def publish_start(self, start: RequestStart) -> None:
        """Hand ``start`` to every subscriber (listeners count records only)."""
        self._fan_out(start)

    def _fan_out(self, event: RequestEvent) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    def add_listener(self, listener: RequestListener) -> Callable[[], None]:
        """Call ``listener`` with every record published from now on; returns the call that
        stops it again (a setting turned off while running)."""
        self._listeners = (*self._listeners, listener)

        def remove() -> None:
            self._listeners = tuple(known for known in self._listeners if known is not listener)

        return remove

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncGenerator[asyncio.Queue[RequestEvent]]:
        """A queue receiving every start and record published while the context is open."""
        queue: asyncio.Queue[RequestEvent] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        self.subscribed = True
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
            self.subscribed = bool(self._subscribers)
