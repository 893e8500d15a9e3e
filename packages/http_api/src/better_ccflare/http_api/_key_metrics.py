"""Per-key spend and remaining budget, read from the key gate's counters when Prometheus scrapes.

Nothing is done per request: the key gate already counts each limited key's spend for its
budgets, and this collector turns those counts into gauges at scrape time. Only keys that carry
limits and have been counted by this instance appear (a key is counted from its first request
here, seeded from the request history); a key without limits costs nothing, as on the hot path.
The ``key`` label is the key's name (keys are few and named by the operator), and ``period`` is
``day``, ``week`` or ``month`` (UTC, weeks from Monday, as the budgets count them).

Each instance of a fleet reports what its own gate counts, which includes the spend it reads
back from the shared request history every second; sum or take the maximum across instances in
PromQL depending on whether the history sync is on (PostgreSQL) or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric

from better_ccflare.core import Clock
from better_ccflare.proxy import KeyGate

__all__ = ["KeyCollector"]


class KeyCollector:
    """Gauges of each limited key's spend, remaining budget and requests in flight."""

    __slots__ = ("_clock", "_gate", "_names")

    def __init__(
        self, *, gate: KeyGate, names: Callable[[], Mapping[str, str]], clock: Clock
    ) -> None:
        self._gate = gate
        self._names = names
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        spend = GaugeMetricFamily(
            "better_ccflare_api_key_spend_usd",
            "US dollars a proxy key has spent in the current UTC day, week or month (keys with "
            "limits only).",
            labels=["key", "period"],
        )
        remaining = GaugeMetricFamily(
            "better_ccflare_api_key_budget_remaining_usd",
            "US dollars left of a proxy key's budget for the current UTC day, week or month "
            "(only periods with a budget).",
            labels=["key", "period"],
        )
        in_flight = GaugeMetricFamily(
            "better_ccflare_api_key_in_flight_requests",
            "Requests of a proxy key with limits being served by this instance.",
            labels=["key"],
        )
        names = self._names()
        limiter = self._gate.limiter
        now_ms = self._clock.now_ms()
        for key_id, limits in limiter.tracked().items():
            use = limiter.usage(key_id, now_ms)
            if use is None:
                continue
            name = names.get(key_id, key_id)
            _, _, inflight, day, week, month = use
            in_flight.add_metric([name], inflight)
            for period, spent, budget in (
                ("day", day, limits.budget_daily_usd),
                ("week", week, limits.budget_weekly_usd),
                ("month", month, limits.budget_monthly_usd),
            ):
                spend.add_metric([name, period], spent)
                if budget is not None:
                    remaining.add_metric([name, period], max(budget - spent, 0.0))
        yield spend
        yield remaining
        yield in_flight
