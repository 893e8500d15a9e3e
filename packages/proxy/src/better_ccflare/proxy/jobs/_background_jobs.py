"""The job set: the usage poller and the maintenance jobs, started and stopped together.

The server's lifespan starts and stops :class:`BackgroundJobs` as one; the server adds its own
schedules (account and config reloads, rollups, auto-refresh) with :meth:`BackgroundJobs.add`,
so the jobs overview lists every schedule in one place.

Some jobs act on what every instance of a fleet shares (the database, the upstream's usage
endpoint) and run on the leader alone (:mod:`._leadership`); the others (reloading what changed
in the database, the config file) run on every instance.
"""

from __future__ import annotations

import asyncio
import logging

from better_ccflare.core import Clock, Config
from better_ccflare.database import RetentionResult, Store
from better_ccflare.proxy.admin._token_health import TokenHealthReport, check_token_health

from ._leadership import LEADERSHIP_INTERVAL_MS, JobLeadership
from ._periodic_job import PeriodicJob, Sleep
from ._usage_poller import UsagePoller

__all__ = ["BackgroundJobs"]

_log = logging.getLogger("better_ccflare.proxy")

_HOUR_MS = 3_600_000


class BackgroundJobs:
    """The poller and the maintenance jobs, started and stopped together.

    Jobs (from the reference's interval manager), each run by the fleet's leader only:

    * ``data-retention-cleanup``, hourly and at start: :meth:`Store.run_retention` with the
      configured ``data_retention_days`` and ``request_retention_days``;
    * ``oauth-session-cleanup``, hourly: delete expired pending logins;
    * ``rate-limit-cleanup``, hourly: end cooldowns whose time has passed;
    * ``token-health``, every 6 hours and at start: :func:`check_token_health` over the stored
      accounts; the latest reports are in :attr:`token_health`.

    The poller runs on every instance: the leader polls, the others follow its snapshots.

    Args:
        store: The open store.
        config: Supplies the retention settings.
        clock: Source of "now".
        poller: Started and stopped with the jobs, when given.
        sleep: How the jobs wait; ``asyncio.sleep`` by default.
        leadership_interval_ms: How often the leadership is asked for (or confirmed).
    """

    __slots__ = (
        "_clock",
        "_config",
        "_fleet_wide",
        "_store",
        "jobs",
        "leadership",
        "poller",
        "token_health",
    )

    def __init__(
        self,
        *,
        store: Store,
        config: Config,
        clock: Clock,
        poller: UsagePoller | None = None,
        sleep: Sleep = asyncio.sleep,
        leadership_interval_ms: int = LEADERSHIP_INTERVAL_MS,
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self.poller = poller
        self.token_health: tuple[TokenHealthReport, ...] = ()
        self.jobs: dict[str, PeriodicJob] = {
            job.name: job
            for job in (
                PeriodicJob(
                    "data-retention-cleanup",
                    _HOUR_MS,
                    self.run_retention,
                    run_at_start=True,
                    sleep=sleep,
                ),
                PeriodicJob("oauth-session-cleanup", _HOUR_MS, self._clean_oauth, sleep=sleep),
                PeriodicJob("rate-limit-cleanup", _HOUR_MS, self._clean_rate_limits, sleep=sleep),
                PeriodicJob(
                    "token-health",
                    6 * _HOUR_MS,
                    self.check_token_health,
                    run_at_start=True,
                    sleep=sleep,
                ),
            )
        }
        self._fleet_wide = set(self.jobs)
        self.leadership = JobLeadership(
            store.job_lease(),
            on_gain=self._lead,
            on_loss=self._follow,
            interval_ms=leadership_interval_ms,
        )

    def add(self, job: PeriodicJob, *, fleet_wide: bool = False) -> None:
        """Schedule ``job`` with the others; ``fleet_wide`` ones run on the leader alone.
        Add before :meth:`start`."""
        self.jobs[job.name] = job
        if fleet_wide:
            self._fleet_wide.add(job.name)

    def fleet_wide(self, name: str) -> bool:
        """Whether job ``name`` runs on the fleet's leader alone."""
        return name in self._fleet_wide

    def use_config(self, config: Config) -> None:
        """Take retention settings from ``config`` from the next run on (a live settings
        change)."""
        self._config = config

    async def start(self) -> None:
        """Start every instance's job and the poller, then ask for the leadership, which
        starts the fleet's jobs if granted (a lone server is granted it before this returns).
        Runs scheduled "at start" begin in the background."""
        for name, job in self.jobs.items():
            if name not in self._fleet_wide:
                job.start()
        if self.poller is not None:
            self.poller.lead(False)
            self.poller.start()
        await self.leadership.start()

    async def stop(self) -> None:
        """Give the leadership up, stop the poller and every job, and wait for them to end."""
        await self.leadership.stop()
        if self.poller is not None:
            await self.poller.stop()
        await asyncio.gather(*(job.stop() for job in self.jobs.values()))

    async def _lead(self) -> None:
        for name in self._fleet_wide:
            self.jobs[name].start()
        if self.poller is not None:
            self.poller.lead(True)

    async def _follow(self) -> None:
        if self.poller is not None:
            self.poller.lead(False)
        await asyncio.gather(*(self.jobs[name].stop() for name in self._fleet_wide))

    async def run_retention(self) -> RetentionResult:
        """Delete history past the configured retention (also the manual cleanup action)."""
        result = await self._store.run_retention(
            self._config.data_retention_days,
            self._config.request_retention_days,
            now_ms=self._clock.now_ms(),
        )
        deleted = {
            "payloads": result.payloads_deleted,
            "requests": result.requests_deleted,
            "orphaned payloads": result.orphan_payloads_deleted,
            "expired logins": result.oauth_sessions_deleted,
            "usage snapshots": result.usage_snapshots_deleted,
        }
        if counts := [f"{count} {what}" for what, count in deleted.items() if count]:
            _log.info("Retention cleanup deleted %s.", ", ".join(counts))
        return result

    async def check_token_health(self) -> tuple[TokenHealthReport, ...]:
        """Classify every stored account's refresh token and keep the reports."""
        accounts = await self._store.accounts.list_all()
        self.token_health = tuple(check_token_health(accounts, self._clock.now_ms()))
        return self.token_health

    async def _clean_oauth(self) -> int:
        return await self._store.oauth_sessions.delete_expired(self._clock.now_ms())

    async def _clean_rate_limits(self) -> int:
        return await self._store.accounts.clear_expired_rate_limits(self._clock.now_ms())
