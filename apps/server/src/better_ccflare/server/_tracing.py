"""OpenTelemetry spans for proxied requests: one per request, a child per account tried.

This module imports OpenTelemetry (the ``otel`` extra), so the service imports it only when
``BETTER_CCFLARE_TRACING`` is on. :class:`Tracing` is the proxy's
:class:`~better_ccflare.proxy.RequestTracer`: the pipeline tells it when a request starts and
when it tries an account; how each attempt and request ended it reads off the events the proxy
emits anyway (a :class:`~better_ccflare.proxy.Failover` per failed attempt, an
:class:`~better_ccflare.proxy.AllAccountsFailed` when none served, and the request's record).

The client's W3C ``traceparent`` (and ``tracestate``) is the request span's parent; without
one the request starts a trace. Spans are made through the OpenTelemetry API only, so any
``TracerProvider`` works: the server's, built from ``OTEL_*`` (``_tracing_setup``), or a test's
with an in-memory exporter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    TracerProvider,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from better_ccflare.core import Account, RequestRecord
from better_ccflare.proxy import (
    AllAccountsFailed,
    Failover,
    FailoverReason,
    PoolEvent,
    PoolEvents,
    RequestEvents,
    RequestTimings,
)

__all__ = ["Tracing"]

INSTRUMENTATION_NAME = "better_ccflare.proxy"

_W3C = TraceContextTextMapPropagator()


@dataclass(slots=True)
class _Trace:
    """The open spans of one request."""

    span: Span
    context: Context
    """The request span's context: every attempt's parent."""
    attempt: Span | None = None
    account: Account | None = None
    """The account of the latest attempt."""
    attempts: int = 0


class Tracing:
    """Spans for proxied requests, exported by ``provider``.

    Call :meth:`subscribe` with the service's events, and give the object to the proxy as
    ``ProxyDeps.tracer``.

    Attributes of the request span (kind ``SERVER``, named ``<method> <path>``):
    ``http.request.method``, ``url.path``, ``http.response.status_code``,
    ``better_ccflare.request_id``, ``better_ccflare.account``, ``better_ccflare.provider``,
    ``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``,
    ``better_ccflare.failovers``; its status is an error for a 5xx or no answer. Each attempt
    (kind ``CLIENT``, named ``upstream attempt``): ``better_ccflare.account``,
    ``better_ccflare.account_id``, ``better_ccflare.provider``, ``better_ccflare.attempt`` (1,
    2, ...), ``http.response.status_code`` when the upstream answered, and for one that failed
    over ``better_ccflare.failover_reason`` and an error status.
    """

    __slots__ = ("_tracer", "_traces")

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer(INSTRUMENTATION_NAME)
        self._traces: dict[str, _Trace] = {}

    def subscribe(self, pool: PoolEvents, requests: RequestEvents) -> Callable[[], None]:
        """Listen to the pool's and the requests' events; returns the call that stops it."""
        stop_pool = pool.subscribe(self.observe_pool_event)
        stop_requests = requests.add_listener(self.observe_request)

        def stop() -> None:
            stop_pool()
            stop_requests()

        return stop

    @property
    def open_requests(self) -> int:
        """Requests whose spans are still open (none once every request has ended)."""
        return len(self._traces)

    def request_started(
        self, request_id: str, method: str, path: str, headers: Mapping[str, str]
    ) -> None:
        parent = _W3C.extract(headers)
        span = self._tracer.start_span(
            f"{method} {path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": path,
                "better_ccflare.request_id": request_id,
            },
        )
        self._traces[request_id] = _Trace(span=span, context=set_span_in_context(span, parent))

    def attempt_started(self, request_id: str, account: Account) -> dict[str, str]:
        trace = self._traces.get(request_id)
        if trace is None:
            return {}
        if trace.attempt is not None:  # every attempt ends with an event; this is a safety net
            trace.attempt.end()
        trace.attempts += 1
        trace.account = account
        attempt = self._tracer.start_span(
            "upstream attempt",
            context=trace.context,
            kind=SpanKind.CLIENT,
            attributes={
                "better_ccflare.account": account.name,
                "better_ccflare.account_id": account.id,
                "better_ccflare.provider": account.provider,
                "better_ccflare.attempt": trace.attempts,
            },
        )
        trace.attempt = attempt
        carrier: dict[str, str] = {}
        _W3C.inject(carrier, context=set_span_in_context(attempt))
        return carrier

    def request_finished(self, request_id: str) -> None:
        trace = self._traces.pop(request_id, None)
        if trace is None:
            return
        description = "the request ended without a record (the proxy failed unexpectedly)"
        if trace.attempt is not None:
            trace.attempt.set_status(Status(StatusCode.ERROR, description))
            trace.attempt.end()
        trace.span.set_status(Status(StatusCode.ERROR, description))
        trace.span.end()

    def observe_pool_event(self, event: PoolEvent) -> None:
        """End the attempt a failover or the last failure ended (a pool-event listener)."""
        if not isinstance(event, Failover | AllAccountsFailed):
            return
        trace = self._traces.get(event.request_id)
        if trace is None:
            return
        if isinstance(event, AllAccountsFailed):
            trace.span.set_attribute("better_ccflare.all_accounts_failed", True)
        if trace.attempt is not None:
            _fail(trace.attempt, event.status, event.reason)
            trace.attempt = None

    def observe_request(self, record: RequestRecord, timings: RequestTimings) -> None:
        """End the request's spans with what its record says (a request listener)."""
        trace = self._traces.pop(record.id, None)
        if trace is None:
            return
        status = record.status_code
        attempt = trace.attempt
        account = trace.account
        if attempt is not None:
            if account is not None and record.account_id == account.id and status is not None:
                attempt.set_attribute("http.response.status_code", status)
                if status >= 400:
                    attempt.set_status(Status(StatusCode.ERROR, f"upstream answered {status}"))
            else:  # the client left, or the server stopped, before an upstream answered
                ended = record.stream_terminal_state or "no answer"
                attempt.set_status(Status(StatusCode.ERROR, str(ended)))
            attempt.end()
        span = trace.span
        served = account if account is not None and record.account_id == account.id else None
        usage = record.usage
        span.set_attributes(
            {
                "better_ccflare.failovers": record.failover_attempts,
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
            }
        )
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if record.model is not None:
            span.set_attribute("gen_ai.request.model", record.model)
        if served is not None:
            span.set_attribute("better_ccflare.account", served.name)
            span.set_attribute("better_ccflare.provider", served.provider)
        if status is None or status >= 500:
            span.set_status(Status(StatusCode.ERROR, record.error_message or "no answer"))
        span.end()


def _fail(attempt: Span, status: int | None, reason: FailoverReason | None) -> None:
    if status is not None:
        attempt.set_attribute("http.response.status_code", status)
    description = reason.value if reason is not None else "failed"
    if reason is not None:
        attempt.set_attribute("better_ccflare.failover_reason", reason.value)
    attempt.set_status(Status(StatusCode.ERROR, description))
    attempt.end()
