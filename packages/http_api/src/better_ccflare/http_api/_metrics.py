"""The service's Prometheus metrics: one registry, its collectors, and who may read it.

The metrics live in the HTTP package because it serves them and already depends on every
package whose state they read, so the proxy's hot path needs no Prometheus import, only the
plain listener hook of :class:`~better_ccflare.proxy.RequestEvents`. Each :class:`Metrics`
has its own ``CollectorRegistry`` (not prometheus-client's global one), so tests and several
services in one process never share or collide on series.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, generate_latest

from better_ccflare.core import Clock
from better_ccflare.database import Store
from better_ccflare.proxy import AccountPool, KeyGate, RequestEvents, UsageCache

from ._key_metrics import KeyCollector
from ._pool_metrics import PoolCollector
from ._request_metrics import RequestMetrics

__all__ = ["Metrics", "presents_scrape_token"]


class Metrics:
    """Every metric of one running service.

    The server subscribes :attr:`requests` to the request events
    (``events.add_listener(metrics.requests.observe_request)``) and to the pool's events.
    """

    __slots__ = ("registry", "requests")

    def __init__(
        self,
        *,
        pool: AccountPool,
        usage: UsageCache,
        events: RequestEvents,
        store: Store,
        clock: Clock,
        key_gate: KeyGate | None = None,
        key_names: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        """``key_gate`` and ``key_names`` (id to name) add the per-key spend and budgets."""
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = RequestMetrics(pool.get)
        self.registry.register(self.requests)
        self.registry.register(
            PoolCollector(pool=pool, usage=usage, events=events, store=store, clock=clock)
        )
        if key_gate is not None:
            names = key_names or dict[str, str]
            self.registry.register(KeyCollector(gate=key_gate, names=names, clock=clock))

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text exposition format (version 0.0.4)."""
        return generate_latest(self.registry)


def presents_scrape_token(headers: Mapping[str, str], token: str | None) -> bool:
    """Whether the request carries ``token`` as ``Authorization: Bearer`` (Prometheus' way)."""
    if token is None:
        return False
    scheme, _, presented = headers.get("authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )
