"""Leadership of the scheduled jobs: in a fleet, one instance runs them and the others stand by.

Usage polls, auto-refresh probes, retention and the other maintenance jobs act on shared state
(the upstream's usage endpoint, the database), so a fleet of N instances must run them once, not
N times. :class:`JobLeadership` asks the store's :class:`~better_ccflare.database.FleetLease`
every couple of seconds: the leader confirms it still holds the lease (or steps down when its
database connection broke), a follower tries to take it. On PostgreSQL the lease is an advisory
lock held by the leader's connection, so when the leader dies the server releases it and a
follower takes over on its next ask, within :data:`LEADERSHIP_INTERVAL_MS`. On SQLite the one
server always leads. A change of leadership is logged once, when it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from better_ccflare.database import FleetLease

__all__ = ["LEADERSHIP_INTERVAL_MS", "JobLeadership"]

LEADERSHIP_INTERVAL_MS = 2_000
"""How often an instance asks for (or confirms) the leadership: the longest a dead leader's
jobs wait before a follower takes them over, once the database has released its lock."""

_log = logging.getLogger("better_ccflare.proxy")


class JobLeadership:
    """Takes, keeps and gives up the leadership, and tells the jobs.

    Args:
        lease: The store's claim on the leadership.
        on_gain: Awaited when this instance becomes the leader (start the fleet's jobs).
        on_loss: Awaited when it stops being the leader (stop them).
        interval_ms: How often to ask.
    """

    __slots__ = ("_interval_ms", "_lease", "_on_gain", "_on_loss", "_task", "leading")

    def __init__(
        self,
        lease: FleetLease,
        *,
        on_gain: Callable[[], Awaitable[None]],
        on_loss: Callable[[], Awaitable[None]],
        interval_ms: int = LEADERSHIP_INTERVAL_MS,
    ) -> None:
        self._lease = lease
        self._on_gain = on_gain
        self._on_loss = on_loss
        self._interval_ms = interval_ms
        self._task: asyncio.Task[None] | None = None
        self.leading = False
        """Whether this instance runs the fleet's scheduled jobs now."""

    async def check(self) -> bool:
        """Ask once; start or stop the jobs if the answer changed. Returns ``leading``."""
        try:
            holds = await self._lease.hold()
        except Exception:
            _log.exception("Could not ask for the scheduled jobs' leadership")
            holds = False
        if holds and not self.leading:
            self.leading = True
            _log.info(
                "This instance now runs the scheduled jobs (usage polls, auto-refresh, "
                "retention and maintenance) for every instance sharing its database"
            )
            await self._on_gain()
        elif not holds and self.leading:
            self.leading = False
            _log.warning(
                "This instance no longer runs the scheduled jobs (its database connection "
                "broke); another instance takes them over"
            )
            await self._on_loss()
        return self.leading

    async def start(self) -> None:
        """Ask at once (a lone server leads before this returns), then every interval."""
        await self.check()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="job-leadership")

    async def stop(self) -> None:
        """Stop asking, stop the jobs if leading, and give the leadership up for another
        instance to take at once."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.leading:
            self.leading = False
            await self._on_loss()
        await self._lease.release()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_ms / 1000)
            try:
                await self.check()
            except Exception:
                # Starting or stopping a job misbehaved; the next ask tries again.
                _log.exception("Changing the scheduled jobs' leadership failed")
