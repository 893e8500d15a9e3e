"""The seam tracing hooks into the pipeline through, and the trace context a request carries.

Tracing is optional (the server's ``otel`` extra), so the pipeline knows only this protocol:
with no tracer (``ProxyDeps.tracer`` is ``None``) a request costs one ``is None`` test at its
start and one per account tried. A tracer hears the rest from the events the pipeline emits
anyway: each failed attempt's :class:`~better_ccflare.proxy.Failover` (a pool event) and each
request's record (a request event), so the pipeline needs no further hook.

W3C trace context (``traceparent``, ``tracestate``) never goes upstream unless
``ProxySettings.trace_propagate_upstream`` says so: the providers drop the client's, and the
pipeline adds back the attempt's (tracing on) or the client's own (tracing off).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from better_ccflare.core import Account

__all__ = ["TRACE_CONTEXT_HEADERS", "RequestTracer", "client_trace_context"]

TRACE_CONTEXT_HEADERS = ("traceparent", "tracestate")
"""W3C trace context's two headers."""


class RequestTracer(Protocol):
    """Spans for proxied requests; its other inputs are the pool's and the requests' events."""

    def request_started(
        self, request_id: str, method: str, path: str, headers: Mapping[str, str]
    ) -> None:
        """A request (``headers``: the client's, lower-case names) is about to pick accounts."""
        ...

    def attempt_started(self, request_id: str, account: Account) -> dict[str, str]:
        """``account`` is tried next; returns the attempt's W3C trace context headers, which
        the pipeline sends upstream only if the setting allows."""
        ...

    def request_finished(self, request_id: str) -> None:
        """The request is over; ends its spans if no record did (it failed unexpectedly)."""
        ...


def client_trace_context(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's own W3C trace context headers, as the client sent them."""
    return {name: value for name in TRACE_CONTEXT_HEADERS if (value := headers.get(name))}
