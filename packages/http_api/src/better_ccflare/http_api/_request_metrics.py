"""Per-request metrics, tallied from each request's record and the pool's events.

Metrics are always on, so a request must cost next to nothing: instead of prometheus-client's
metric objects (a lock and a label lookup per update, about 7 µs for this set) the tallies are
plain numbers in dicts, updated on the event loop that publishes the records, and turned into
metric families only when Prometheus scrapes (``scripts/bench/metrics_observe.py``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from better_ccflare.core import Account, RequestRecord
from better_ccflare.proxy import (
    AllAccountsFailed,
    CooldownStarted,
    CredentialsRejected,
    Failover,
    PoolEvent,
    RefreshFailed,
    RequestTimings,
)

from ._metric_labels import NO_ACCOUNT, ModelLabels, status_class

__all__ = ["RequestMetrics"]

LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
FIRST_BYTE_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0)
OVERHEAD_BUCKETS_S = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)

_MAX_KEYS = 4096
"""Label combinations remembered for the hot path; past it, the lookup table starts over."""


class _Histogram:
    """One histogram series: a count per bucket (not cumulative) and the sum, both updated by
    :meth:`RequestMetrics.observe_request` directly."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def buckets(self) -> list[tuple[str, float]]:
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return cumulative


class _Tally:
    """The counters and histograms of one (status class, account, provider, model)."""

    __slots__ = (
        "cache_read",
        "cache_write",
        "cost",
        "first_byte",
        "input",
        "latency",
        "output",
        "requests",
    )

    def __init__(self, latency: _Histogram, first_byte: _Histogram) -> None:
        self.requests = self.input = self.output = self.cache_read = self.cache_write = 0
        self.cost = 0.0
        self.latency = latency
        self.first_byte = first_byte


_Labels = tuple[str, str, str, str]
"""status class, account, provider, model"""


class RequestMetrics:
    """The counters fed by :class:`~better_ccflare.proxy.RequestEvents` and the pool's events.

    Args:
        account: The account of an id, for its name and provider (the pool's ``get``).
        models: How model names become labels.
    """

    __slots__ = (
        "_account",
        "_keys",
        "_models",
        "_overhead",
        "_pool_counts",
        "_series",
        "_timings",
    )

    def __init__(
        self, account: Callable[[str], Account | None], *, models: ModelLabels | None = None
    ) -> None:
        self._account = account
        self._models = models or ModelLabels()
        self._keys: dict[tuple[int | None, str | None, str | None], _Tally] = {}
        """(status, account id, model) as recorded to its tally: one lookup per request."""
        self._series: dict[_Labels, _Tally] = {}
        self._timings: dict[tuple[str, str, str], tuple[_Histogram, _Histogram]] = {}
        self._overhead = _Histogram(OVERHEAD_BUCKETS_S)
        self._pool_counts: dict[tuple[str, str, str], int] = {}
        """(metric, account, reason) to count, for the pool-event counters."""

    def observe_request(self, record: RequestRecord, timings: RequestTimings) -> None:
        """Count one finished request (a :data:`~better_ccflare.proxy.RequestListener`)."""
        raw = (record.status_code, record.account_id, record.model)
        tally = self._keys.get(raw)
        if tally is None:
            tally = self._tally_of(raw)
        tally.requests += 1
        usage = record.usage
        tally.input += usage.input_tokens
        tally.output += usage.output_tokens
        tally.cache_read += usage.cache_read_input_tokens
        tally.cache_write += usage.cache_write_5m_input_tokens + usage.cache_write_1h_input_tokens
        if record.cost_usd is not None:  # an unknown price adds nothing, as in analytics
            tally.cost += record.cost_usd
        # _Histogram.observe, written out: three calls fewer per request.
        total_s = timings.total_s
        latency = tally.latency
        latency.counts[bisect_left(latency.bounds, total_s)] += 1
        latency.total += total_s
        upstream_s = timings.upstream_s
        first_byte_s = timings.upstream_first_byte_s
        if upstream_s is not None and first_byte_s is not None:
            first_byte = tally.first_byte
            first_byte.counts[bisect_left(first_byte.bounds, first_byte_s)] += 1
            first_byte.total += first_byte_s
            overhead = self._overhead
            own_s = max(total_s - upstream_s, 0.0)
            overhead.counts[bisect_left(overhead.bounds, own_s)] += 1
            overhead.total += own_s

    def observe_pool_event(self, event: PoolEvent) -> None:
        """Count a pool event (a :class:`~better_ccflare.proxy.PoolEvents` listener)."""
        match event:
            case Failover(account=account, reason=reason):
                key = ("failovers", account, str(reason))
            case CooldownStarted(account=account, reason=reason):
                key = ("cooldowns_started", account, str(reason) if reason else "unknown")
            case CredentialsRejected(account=account):
                key = ("credentials_rejected", account, "")
            case RefreshFailed(account=account):
                key = ("refresh_failures", account, "")
            case AllAccountsFailed():
                key = ("all_accounts_failed", "", "")
            case _:
                return
        self._pool_counts[key] = self._pool_counts.get(key, 0) + 1

    def forget_labels(self) -> None:
        """Look account names up again from the next request on (after a rename)."""
        self._keys.clear()

    def _tally_of(self, raw: tuple[int | None, str | None, str | None]) -> _Tally:
        """The tally of a (status, account id, model) not looked up since the last reset."""
        status, account_id, model = raw
        account = self._account(account_id) if account_id is not None else None
        labels = (
            status_class(status),
            account.name if account is not None else (account_id or NO_ACCOUNT),
            account.provider if account is not None else NO_ACCOUNT,
            self._models(model),
        )
        tally = self._series.get(labels)
        if tally is None:
            timing_labels = labels[1:]
            timing = self._timings.get(timing_labels)
            if timing is None:
                timing = (_Histogram(LATENCY_BUCKETS_S), _Histogram(FIRST_BYTE_BUCKETS_S))
                self._timings[timing_labels] = timing
            tally = self._series[labels] = _Tally(*timing)
        if len(self._keys) >= _MAX_KEYS:
            self._keys.clear()
        self._keys[raw] = tally
        return tally

    def collect(self) -> Iterator[Metric]:
        """The metric families, built from the tallies (called at scrape time)."""
        names = ["status_class", "account", "provider", "model"]
        usage_names = names[1:]
        requests = CounterMetricFamily(
            "better_ccflare_requests",
            "Proxied requests by the status class the client got, account, provider and model.",
            labels=names,
        )
        for labels, tally in self._series.items():
            requests.add_metric(labels, tally.requests)
        yield requests
        usage: dict[tuple[str, str, str], list[float]] = {}
        for labels, tally in self._series.items():
            sums = usage.setdefault(labels[1:], [0, 0, 0, 0, 0.0])
            sums[0] += tally.input
            sums[1] += tally.output
            sums[2] += tally.cache_read
            sums[3] += tally.cache_write
            sums[4] += tally.cost
        for index, (name, documentation) in enumerate(_USAGE_COUNTERS):
            family = CounterMetricFamily(name, documentation, labels=usage_names)
            for labels, sums in usage.items():
                family.add_metric(labels, sums[index])
            yield family
        yield from self._timing_families(usage_names)
        yield from self._pool_families()

    def _timing_families(self, names: list[str]) -> Iterator[Metric]:
        latency = HistogramMetricFamily(
            "better_ccflare_request_total_latency_seconds",
            "Time from a request's arrival to its end (the whole streamed body included).",
            labels=names,
        )
        first_byte = HistogramMetricFamily(
            "better_ccflare_llm_api_time_to_first_byte_seconds",
            "Time from sending the forwarded attempt upstream to its response headers.",
            labels=names,
        )
        for labels, (total, first) in self._timings.items():
            latency.add_metric(list(labels), total.buckets(), total.total)
            first_byte.add_metric(list(labels), first.buckets(), first.total)
        yield latency
        yield first_byte
        overhead = HistogramMetricFamily(
            "better_ccflare_overhead_latency_seconds",
            "Time a forwarded request spent in the proxy outside its upstream exchange "
            "(auth, body, selection, credentials, failed attempts, recording).",
        )
        overhead.add_metric([], self._overhead.buckets(), self._overhead.total)
        yield overhead

    def _pool_families(self) -> Iterator[Metric]:
        for metric, documentation, labels in _POOL_COUNTERS:
            family = CounterMetricFamily(f"better_ccflare_{metric}", documentation, labels=labels)
            for (name, account, reason), count in self._pool_counts.items():
                if name == metric:
                    family.add_metric([account, reason][: len(labels)], count)
            yield family


_USAGE_COUNTERS = (
    ("better_ccflare_input_tokens", "Input tokens (not cached) of proxied requests."),
    ("better_ccflare_output_tokens", "Output tokens of proxied requests."),
    ("better_ccflare_cache_read_input_tokens", "Input tokens read from the prompt cache."),
    ("better_ccflare_cache_creation_input_tokens", "Input tokens written to the prompt cache."),
    ("better_ccflare_spend_usd", "Cost of proxied requests in US dollars, at list prices."),
)
_POOL_COUNTERS: tuple[tuple[str, str, list[str]], ...] = (
    (
        "failovers",
        "Attempts an account failed, after which the next one was tried.",
        ["account", "reason"],
    ),
    ("cooldowns_started", "Accounts benched, by why.", ["account", "reason"]),
    ("credentials_rejected", "Times the upstream refused an account's credentials.", ["account"]),
    ("refresh_failures", "Failed OAuth token refreshes.", ["account"]),
    ("all_accounts_failed", "Requests every candidate account failed.", []),
)
