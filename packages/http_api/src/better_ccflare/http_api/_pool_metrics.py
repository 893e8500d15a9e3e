"""Metrics read at scrape time: account states, usage windows, requests in flight, the writer.

None of these is touched per request: Prometheus asks, and the values are read from what the
pool, the usage cache, the live request events and the store's writer hold in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from better_ccflare.core import AccountState, Clock
from better_ccflare.database import Store
from better_ccflare.proxy import AccountPool, RequestEvents, UsageCache

__all__ = ["PoolCollector"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolCollector:
    """A prometheus-client collector of the service's state, read at each scrape."""

    pool: AccountPool
    usage: UsageCache
    events: RequestEvents
    store: Store
    clock: Clock

    def collect(self) -> Iterator[Metric]:
        now_ms = self.clock.now_ms()
        accounts = self.pool.accounts()
        state = GaugeMetricFamily(
            "better_ccflare_account_state",
            "1 for the state each account is in, 0 for the others.",
            labels=["account", "provider", "state"],
        )
        utilization = GaugeMetricFamily(
            "better_ccflare_account_window_utilization_ratio",
            "How much of each usage window an account has used (1 = the limit), as last polled.",
            labels=["account", "window"],
        )
        reset = GaugeMetricFamily(
            "better_ccflare_account_window_reset_seconds",
            "Seconds until each usage window resets, as last polled.",
            labels=["account", "window"],
        )
        for account in accounts:
            current = account.state(now_ms)
            for name in AccountState:
                state.add_metric([account.name, account.provider, name], float(name is current))
            entry = self.usage.entry(account.id)
            for window in entry.windows if entry is not None else ():
                utilization.add_metric([account.name, window.key], window.utilization / 100)
                if window.resets_at_ms is not None:
                    seconds = max(window.resets_at_ms - now_ms, 0) / 1000
                    reset.add_metric([account.name, window.key], seconds)
        yield state
        yield utilization
        yield reset
        yield GaugeMetricFamily(
            "better_ccflare_in_flight_requests",
            "Proxied requests started and not yet finished.",
            value=self.events.in_flight,
        )
        yield from self._writer()

    def _writer(self) -> Iterator[Metric]:
        stats = self.store.stats()
        yield GaugeMetricFamily(
            "better_ccflare_db_writer_queue_depth",
            "Database writes accepted and not yet committed.",
            value=stats.queued_ops,
        )
        yield GaugeMetricFamily(
            "better_ccflare_db_writer_queued_payload_bytes",
            "Bytes of request payloads waiting to be written.",
            value=stats.queued_payload_bytes,
        )
        for name, documentation, value in (
            ("batches", "Batches the database writer ran.", stats.batches),
            ("transactions", "Transactions the database writer committed.", stats.transactions),
            ("ops_committed", "Writes committed.", stats.ops_committed),
            ("ops_failed", "Writes that failed and were dropped.", stats.ops_failed),
            (
                "payloads_dropped",
                "Request payloads dropped because the writer was behind.",
                stats.payloads_dropped,
            ),
            (
                "write_seconds",
                "Time the writer spent on its batches; divided by batches, the write latency.",
                stats.write_seconds,
            ),
        ):
            yield CounterMetricFamily(
                f"better_ccflare_db_writer_{name}", documentation, value=value
            )
