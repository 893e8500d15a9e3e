"""Hold until reset: how long a request may wait for an account, and how many may wait.

When no account can serve a request but one frees up soon (a window resets, a cooldown ends),
answering "come back in 40 seconds" makes every client do the waiting and retrying itself, and
Claude Code shows the user an error meanwhile. With the opt-in setting
(``BETTER_CCFLARE_HOLD_UNTIL_RESET_MS``), the proxy keeps the request instead and serves it
when the account frees up, within Claude Code's own request timeout (``API_TIMEOUT_MS``,
600 000 ms by default). A streaming request gets its response headers at once and an SSE
``ping`` event every few seconds while it waits, so nothing between the client and the proxy
takes the silence for a dead connection; a non-streaming one just waits.

The pipeline does the waiting (``_pipeline``); this module holds what is shared between the
requests: the policy and the count of requests waiting, bounded by
``BETTER_CCFLARE_HOLD_MAX_WAITING`` so a burst against an exhausted pool cannot pile up
connections without end. With the setting at 0 nothing of this runs.
"""

from __future__ import annotations

import asyncio

import msgspec

from better_ccflare.core import Clock

__all__ = ["PING_EVENT", "HoldPolicy", "HoldSlots", "clock_sleep"]

PING_EVENT = b'event: ping\ndata: {"type": "ping"}\n\n'
"""Anthropic's keep-alive event; clients and the SDKs skip it."""


class HoldPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The settings of hold-until-reset."""

    max_wait_ms: int = 0
    """Hold a request when an account frees up within this; 0: never hold."""
    max_waiting: int = 100
    """How many requests may be held at once."""
    ping_interval_ms: int = 5_000
    """How often a held stream gets a ``ping``; also how often a held request looks again
    whether an account frees up sooner than it expected (one added, a usage reading)."""


class HoldSlots:
    """How many requests are held right now, never more than the policy allows."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting = 0

    def take(self, limit: int) -> bool:
        """Count one more request held; ``False`` (and nothing counted) when ``limit`` wait."""
        if self.waiting >= limit:
            return False
        self.waiting += 1
        return True

    def release(self) -> None:
        self.waiting -= 1


async def clock_sleep(clock: Clock, delay_s: float) -> None:
    """Sleep on ``clock``'s timers (so a fake clock drives it in tests); cancellable."""
    done = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    timer = clock.call_later(delay_s, wake)
    try:
        await done
    finally:
        timer.cancel()
