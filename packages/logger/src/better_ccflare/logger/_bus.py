"""The in-process log bus that feeds the dashboard's live log stream.

Records are logged from the event loop and from worker threads alike, and a dashboard tab can
stop reading at any moment, so publishing never blocks and never raises: each subscriber has a
bounded buffer, and when a slow subscriber's buffer is full its oldest events are dropped (and
counted) to make room. The buffer is a plain ``deque`` guarded by a lock, filled directly from
whatever thread logs; only the wake-up of the waiting reader goes through
``loop.call_soon_threadsafe``, at most once per wait, so a stalled loop cannot accumulate an
unbounded backlog of callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from types import TracebackType

from ._event import LogEvent, event_from_record

__all__ = ["LogBus", "LogBusHandler", "LogSubscription"]


class LogBus:
    """Publish/subscribe for :class:`LogEvent`, plus a ring buffer of the most recent events.

    Args:
        history: How many recent events :meth:`recent` keeps for a newly opened dashboard.
    """

    __slots__ = ("_lock", "_recent", "_subscribers")

    def __init__(self, *, history: int = 1000) -> None:
        if history < 0:
            raise ValueError(f"history must be 0 or more events, got {history}")
        self._lock = threading.Lock()
        self._recent: deque[LogEvent] = deque(maxlen=history)
        self._subscribers: set[LogSubscription] = set()

    def publish(self, event: LogEvent) -> None:
        """Record ``event`` and hand it to every subscriber. Safe from any thread; never blocks."""
        with self._lock:
            self._recent.append(event)
            subscribers = tuple(self._subscribers)
        for subscription in subscribers:
            subscription.offer(event)

    def recent(self) -> list[LogEvent]:
        """The most recent events, oldest first."""
        with self._lock:
            return list(self._recent)

    def subscribe(self, maxsize: int = 1000) -> LogSubscription:
        """Start receiving events on the running event loop.

        Events published from now on are buffered until read; use the result as an async
        iterator, ideally inside ``async with`` so it is unsubscribed when the reader goes away::

            async with bus.subscribe() as events:
                async for event in events:
                    ...

        Args:
            maxsize: How many unread events to buffer before dropping the oldest.

        Raises:
            RuntimeError: Called outside a running event loop.
        """
        subscription = LogSubscription(self, asyncio.get_running_loop(), maxsize)
        with self._lock:
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: LogSubscription) -> None:
        """Stop delivering to ``subscription``; unknown subscriptions are ignored."""
        with self._lock:
            self._subscribers.discard(subscription)


class LogSubscription:
    """One reader's bounded buffer of events; an async iterator and an async context manager.

    After :meth:`close` (or leaving ``async with``), iteration yields what is still buffered
    and then stops.
    """

    __slots__ = ("_buffer", "_bus", "_closed", "_dropped", "_lock", "_loop", "_wake", "_woken")

    def __init__(self, bus: LogBus, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1 event, got {maxsize}")
        self._bus = bus
        self._loop = loop
        self._lock = threading.Lock()
        self._buffer: deque[LogEvent] = deque(maxlen=maxsize)
        self._dropped = 0
        self._closed = False
        self._wake = asyncio.Event()
        # True once a wake-up is scheduled for the current wait, so a burst of events from a
        # worker thread schedules one loop callback, not one per event.
        self._woken = False

    @property
    def dropped(self) -> int:
        """How many events were discarded because this reader fell behind."""
        with self._lock:
            return self._dropped

    def offer(self, event: LogEvent) -> None:
        """Buffer ``event`` (dropping the oldest if full) and wake the reader; any thread."""
        with self._lock:
            if self._closed:
                return
            if len(self._buffer) == self._buffer.maxlen:
                self._dropped += 1
            self._buffer.append(event)
            if self._woken:
                return
            self._woken = True
        self._wake_reader()

    def close(self) -> None:
        """Unsubscribe; a reader waiting for the next event finishes once the buffer is empty."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._bus.unsubscribe(self)
        self._wake_reader()

    def __aiter__(self) -> LogSubscription:
        return self

    async def __anext__(self) -> LogEvent:
        while True:
            with self._lock:
                if self._buffer:
                    return self._buffer.popleft()
                if self._closed:
                    raise StopAsyncIteration
                self._wake.clear()
                self._woken = False
            await self._wake.wait()

    async def __aenter__(self) -> LogSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _wake_reader(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        try:
            if running is self._loop:
                self._wake.set()
            else:
                self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:
            # The subscriber's loop is closed: nobody will ever read this buffer again.
            with self._lock:
                self._closed = True
            self._bus.unsubscribe(self)


class LogBusHandler(logging.Handler):
    """A ``logging`` handler that publishes each record to a :class:`LogBus` as a LogEvent."""

    def __init__(self, bus: LogBus) -> None:
        super().__init__()
        self.bus = bus

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.bus.publish(event_from_record(record))
        except Exception:  # the stdlib's contract: report via handleError, never raise
            self.handleError(record)
