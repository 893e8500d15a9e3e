"""Time as an injectable dependency.

Strategies, cooldowns and retention all reason about "now". Passing a clock instead of calling
``time.time()`` lets tests (and hypothesis state machines) move time deterministically. Work
scheduled for later goes through the clock too (:meth:`Clock.call_later`), so a test advances
a :class:`FakeClock` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock", "Timer"]


class Timer(Protocol):
    """A call scheduled with :meth:`Clock.call_later`."""

    def cancel(self) -> None:
        """Stop the call from happening (nothing happens if it already did)."""
        ...


@runtime_checkable
class Clock(Protocol):
    """Something that knows the current time."""

    def now_ms(self) -> int:
        """Wall-clock time as integer epoch milliseconds (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards; for measuring durations."""
        ...

    def call_later(self, delay_s: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback`` once, ``delay_s`` seconds from now, on the running event loop."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    def call_later(self, delay_s: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_later(delay_s, callback)


class FakeClock:
    """A clock that only moves when told to. Both readings advance together, and calls
    scheduled with :meth:`call_later` happen (in order) when time is moved past them."""

    __slots__ = ("_mono", "_now_ms", "_timers")

    def __init__(self, now_ms: int = 1_767_225_600_000) -> None:
        # Default start: 2026-01-01T00:00:00Z, a fixed point that keeps test output stable.
        self._now_ms = now_ms
        self._mono = 0.0
        self._timers: list[_FakeTimer] = []

    def now_ms(self) -> int:
        return self._now_ms

    def monotonic(self) -> float:
        return self._mono

    def advance(self, ms: int) -> None:
        """Move time forward by ``ms`` milliseconds."""
        if ms < 0:
            raise ValueError("a clock cannot move backwards")
        self._now_ms += ms
        self._mono += ms / 1000
        self._run_due()

    def set(self, now_ms: int) -> None:
        """Jump to an absolute time (forward only)."""
        self.advance(now_ms - self._now_ms)

    def call_later(self, delay_s: float, callback: Callable[[], object]) -> Timer:
        """Call ``callback`` once :meth:`advance` or :meth:`set` moves ``delay_s`` past now
        (to the millisecond, like the rest of this clock)."""
        timer = _FakeTimer(self._now_ms + round(delay_s * 1000), callback)
        self._timers.append(timer)
        return timer

    def _run_due(self) -> None:
        """Run the calls now due, earliest first (those they schedule too, if due)."""
        while due := [t for t in self._timers if t.due_ms <= self._now_ms]:
            timer = min(due, key=lambda t: t.due_ms)
            self._timers.remove(timer)
            if not timer.cancelled:
                timer.callback()


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "due_ms")

    def __init__(self, due_ms: int, callback: Callable[[], object]) -> None:
        self.due_ms = due_ms
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
