"""One coroutine function run on a fixed delay, never overlapping itself.

Every background schedule of the service (maintenance, account and config reloads, rollups, the
auto-refresh heartbeat) is a :class:`PeriodicJob`, so the jobs overview reports them alike.
Waiting goes through an injected ``sleep``, so tests run hours of schedule instantly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["PeriodicJob", "Sleep"]

Sleep = Callable[[float], Awaitable[None]]
"""Waits the given number of seconds (``asyncio.sleep``; tests advance a fake clock instead)."""

_log = logging.getLogger("better_ccflare.proxy")


class PeriodicJob:
    """Runs ``fn`` every ``interval_ms`` (measured from the end of one run to the next start).

    A run that raises is logged and the schedule goes on. Runs never overlap: the loop waits
    for each run, and :meth:`run_now` skips while one is in progress.

    Args:
        name: For logs and status.
        interval_ms: Pause between runs.
        fn: The work; its return value is kept in :attr:`last_result`.
        run_at_start: Run once as soon as the job starts instead of after the first interval.
        sleep: How to wait; ``asyncio.sleep`` by default.
    """

    __slots__ = (
        "_fn",
        "_running",
        "_sleep",
        "_task",
        "interval_ms",
        "last_error",
        "last_result",
        "name",
        "run_at_start",
        "runs",
    )

    def __init__(
        self,
        name: str,
        interval_ms: int,
        fn: Callable[[], Awaitable[object]],
        *,
        run_at_start: bool = False,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self.interval_ms = interval_ms
        self.run_at_start = run_at_start
        self._fn = fn
        self._sleep = sleep
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        """Completed runs, successful or not."""
        self.last_result: object = None
        self.last_error: str | None = None
        """``"ExceptionType: message"`` of the last run if it failed, else ``None``."""

    @property
    def running(self) -> bool:
        """True while a run is in progress."""
        return self._running

    @property
    def started(self) -> bool:
        """True while the schedule is active."""
        return self._task is not None and not self._task.done()

    async def run_now(self) -> bool:
        """Run once now, unless a run is already in progress.

        Returns:
            ``False`` when the run was skipped because another one was in progress.
        """
        if self._running:
            _log.debug("Job %s is still running; skipping this run", self.name)
            return False
        self._running = True
        try:
            self.last_result = await self._fn()
            self.last_error = None
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            _log.exception("Background job %s failed", self.name)
        finally:
            self._running = False
            self.runs += 1
        return True

    def start(self) -> None:
        """Start the schedule in a background task (idempotent)."""
        if not self.started:
            self._task = asyncio.create_task(self._loop(), name=f"job-{self.name}")

    async def stop(self) -> None:
        """Stop the schedule, cancelling a run in progress, and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        if self.run_at_start:
            await self.run_now()
        while True:
            await self._sleep(self.interval_ms / 1000)
            await self.run_now()
