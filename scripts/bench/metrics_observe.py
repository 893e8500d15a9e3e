"""What the Prometheus metrics cost per request: one ``RequestMetrics.observe_request`` call.

Metrics are always on, so the per-request tally must take a few microseconds at most. This
times the call with a realistic record (a served streamed request with tokens and cost) and,
for comparison, the same updates made through prometheus-client's own metric objects.

    uv run python scripts/bench/metrics_observe.py
"""

from __future__ import annotations

import timeit

from prometheus_client import CollectorRegistry, Counter, Histogram

from better_ccflare.core import Account, RequestRecord, TokenUsage
from better_ccflare.http_api import RequestMetrics
from better_ccflare.proxy import RequestTimings

N = 200_000


def main() -> None:
    account = Account(id="acc-1", name="work", provider="claude-oauth", created_at_ms=0)
    metrics = RequestMetrics(lambda _: account)
    record = RequestRecord(
        id="r",
        timestamp_ms=0,
        method="POST",
        path="/v1/messages",
        account_id="acc-1",
        status_code=200,
        success=True,
        model="claude-sonnet-4-5-20250929",
        usage=TokenUsage(input_tokens=12, output_tokens=300, cache_read_input_tokens=5000),
        cost_usd=0.0061,
    )
    timings = RequestTimings(total_s=1.2, upstream_first_byte_s=0.4, upstream_s=1.199)
    seconds = timeit.timeit(lambda: metrics.observe_request(record, timings), number=N)
    print(f"RequestMetrics.observe_request: {seconds / N * 1e6:.2f} µs per request")

    registry = CollectorRegistry()
    labels = ("2xx", "work", "claude-oauth", "claude-sonnet-4-5")
    requests = Counter("r", "", ["s", "a", "p", "m"], registry=registry).labels(*labels)
    tokens = [
        Counter(f"t{i}", "", ["a", "p", "m"], registry=registry).labels(*labels[1:])
        for i in range(5)
    ]
    latencies = [
        Histogram(f"h{i}", "", ["a", "p", "m"], registry=registry).labels(*labels[1:])
        for i in range(2)
    ]
    overhead = Histogram("o", "", registry=registry)

    def with_objects() -> None:
        requests.inc()
        for counter in tokens:
            counter.inc(10)
        for histogram in latencies:
            histogram.observe(0.4)
        overhead.observe(0.001)

    seconds = timeit.timeit(with_objects, number=N)
    print(f"prometheus-client metric objects, same updates: {seconds / N * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
