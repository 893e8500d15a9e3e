"""Time as an injectable dependency.

Strategies, cooldowns and retention all reason about "now". Passing a clock instead of calling
``time.time()`` lets tests (and hypothesis state machines) move time deterministically.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Something that knows the current time."""

    def now_ms(self) -> int:
        """Wall-clock time as integer epoch milliseconds (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards; for measuring durations."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to. Both readings advance together."""

    __slots__ = ("_mono", "_now_ms")

    def __init__(self, now_ms: int = 1_767_225_600_000) -> None:
        # Default start: 2026-01-01T00:00:00Z, a fixed point that keeps test output stable.
        self._now_ms = now_ms
        self._mono = 0.0

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

    def set(self, now_ms: int) -> None:
        """Jump to an absolute time (forward only)."""
        self.advance(now_ms - self._now_ms)
