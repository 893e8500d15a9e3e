"""OpenTelemetry traces end to end: the real service against the fake upstream, its spans read
from the SDK's in-memory exporter, and once exported over OTLP/HTTP to a fake collector on
loopback and decoded with opentelemetry-proto, as a collector would read them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anthropic
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from better_ccflare.core import BetterCcflareError

from .support.client import recorded, sdk
from .support.fake_upstream import FakeUpstream, Reply
from .support.messages import MODEL, message_json, quota_429
from .support.service import console_account, running_proxy, serving

CLIENT_TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
CLIENT_SPAN_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{CLIENT_TRACE_ID:032x}-{CLIENT_SPAN_ID:016x}-01"
TRACESTATE = "vendor=opaque"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    yield memory
    memory.shutdown()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def ask_traced(url: str, headers: Mapping[str, str] | None = None) -> None:
    async with sdk(url) as client:
        await client.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers=dict(headers or {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}),
        )


def split(spans: tuple[ReadableSpan, ...]) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The one request span and its attempt spans, in the order they started."""
    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    attempts = sorted(
        (s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    assert len(spans) == 1 + len(attempts)
    return request, attempts


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def quota_then_served() -> tuple[Reply, Reply]:
    return quota_429(int(time.time()) + 3600), Reply.json(message_json())


async def test_a_failover_makes_a_request_span_with_one_attempt_span_per_account(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with FakeUpstream() as upstream:
        accounts = (console_account("a", upstream), console_account("b", upstream))
        async with running_proxy(tmp_path, *accounts, tracer_provider=provider) as (service, url):
            upstream.enqueue(*quota_then_served())
            await ask_traced(url)
            [record] = await recorded(service)
            assert service.tracing is not None
            assert service.tracing.open_requests == 0

    request, attempts = split(exporter.get_finished_spans())
    # The client's traceparent is the request span's parent.
    assert request.context is not None
    assert request.parent is not None
    assert request.context.trace_id == CLIENT_TRACE_ID
    assert request.parent.span_id == CLIENT_SPAN_ID
    assert request.name == "POST /v1/messages"
    assert attrs(request) == {
        "http.request.method": "POST",
        "url.path": "/v1/messages",
        "better_ccflare.request_id": record.id,
        "http.response.status_code": 200,
        "better_ccflare.account": "b",
        "better_ccflare.provider": "claude-console-api",
        "gen_ai.request.model": MODEL,
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "better_ccflare.failovers": 1,
    }
    assert request.status.status_code is StatusCode.UNSET
    failed, served = attempts
    for attempt in attempts:
        assert attempt.parent is not None
        assert attempt.parent.span_id == request.context.span_id
        assert attempt.name == "upstream attempt"
    assert attrs(failed) == {
        "better_ccflare.account": "a",
        "better_ccflare.account_id": "a",
        "better_ccflare.provider": "claude-console-api",
        "better_ccflare.attempt": 1,
        "http.response.status_code": 429,
        "better_ccflare.failover_reason": "account_quota",
    }
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "account_quota"
    assert attrs(served)["better_ccflare.account"] == "b"
    assert attrs(served)["better_ccflare.attempt"] == 2
    assert attrs(served)["http.response.status_code"] == 200
    assert served.status.status_code is StatusCode.UNSET
    assert failed.end_time is not None
    assert served.start_time is not None
    assert failed.end_time <= served.start_time


async def test_a_request_without_trace_context_starts_a_trace(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(
            tmp_path, console_account("a", upstream), tracer_provider=provider
        ) as (service, url):
            await ask_traced(url, headers={"x-unrelated": "1"})
            await recorded(service)

    request, [attempt] = split(exporter.get_finished_spans())
    assert request.parent is None
    assert attempt.context is not None
    assert request.context is not None
    assert attempt.context.trace_id == request.context.trace_id


async def test_trace_context_stays_out_of_the_upstream_by_default(
    tmp_path: Path, provider: TracerProvider
) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(
            tmp_path, console_account("a", upstream), tracer_provider=provider
        ) as (service, url):
            await ask_traced(url)
            await recorded(service)
        async with running_proxy(tmp_path / "untraced", console_account("a", upstream)) as (
            service,
            url,
        ):
            await ask_traced(url)
            await recorded(service)

    assert len(upstream.requests) == 2
    for sent in upstream.requests:
        assert "traceparent" not in sent.headers
        assert "tracestate" not in sent.headers


async def test_with_propagation_on_each_upstream_request_has_its_attempt_as_parent(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with FakeUpstream() as upstream:
        accounts = (console_account("a", upstream), console_account("b", upstream))
        async with running_proxy(
            tmp_path,
            *accounts,
            tracer_provider=provider,
            BETTER_CCFLARE_TRACE_PROPAGATE_UPSTREAM="true",
        ) as (service, url):
            upstream.enqueue(*quota_then_served())
            await ask_traced(url)
            await recorded(service)

    _, attempts = split(exporter.get_finished_spans())
    expected = [
        f"00-{CLIENT_TRACE_ID:032x}-{a.context.span_id:016x}-01"
        for a in attempts
        if a.context is not None
    ]
    assert [sent.headers["traceparent"] for sent in upstream.requests] == expected
    assert all(sent.headers["tracestate"] == TRACESTATE for sent in upstream.requests)


async def test_without_tracing_propagation_passes_the_clients_context_through(
    tmp_path: Path,
) -> None:
    async with FakeUpstream() as upstream:
        upstream.set_default(Reply.json(message_json()))
        async with running_proxy(
            tmp_path, console_account("a", upstream), BETTER_CCFLARE_TRACE_PROPAGATE_UPSTREAM="1"
        ) as (service, url):
            assert service.tracing is None
            await ask_traced(url)
            await recorded(service)

    [sent] = upstream.requests
    assert sent.headers["traceparent"] == TRACEPARENT
    assert sent.headers["tracestate"] == TRACESTATE


async def test_when_every_account_fails_each_attempt_says_why(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    reset = int(time.time()) + 3600
    async with FakeUpstream() as upstream:
        accounts = (console_account("a", upstream), console_account("b", upstream))
        async with running_proxy(tmp_path, *accounts, tracer_provider=provider) as (service, url):
            upstream.enqueue(quota_429(reset), quota_429(reset))
            with pytest.raises(anthropic.RateLimitError):
                await ask_traced(url)
            await recorded(service)
            assert service.tracing is not None
            assert service.tracing.open_requests == 0

    request, attempts = split(exporter.get_finished_spans())
    assert [attrs(a)["better_ccflare.account"] for a in attempts] == ["a", "b"]
    for attempt in attempts:
        assert attrs(attempt)["better_ccflare.failover_reason"] == "account_quota"
        assert attempt.status.status_code is StatusCode.ERROR
    assert attrs(request)["better_ccflare.all_accounts_failed"] is True
    assert attrs(request)["http.response.status_code"] == 429
    assert "better_ccflare.account" not in attrs(request)


async def test_a_request_no_account_could_serve_has_no_attempt_and_an_error_status(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with running_proxy(tmp_path, tracer_provider=provider) as (service, url):
        with pytest.raises(anthropic.APIStatusError):
            await ask_traced(url)
        await recorded(service)

    request, attempts = split(exporter.get_finished_spans())
    assert attempts == []
    assert attrs(request)["http.response.status_code"] == 503
    assert request.status.status_code is StatusCode.ERROR


async def test_tracing_on_without_the_extra_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "better_ccflare.server._tracing", None)
    with pytest.raises(BetterCcflareError, match=r"better-ccflare-server\[otel\]"):
        async with running_proxy(tmp_path, BETTER_CCFLARE_TRACING="true"):
            pass


@pytest.mark.parametrize(
    ("variable", "value"),
    [("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_TRACES_EXPORTER", "otlp,zipkin")],
)
async def test_an_exporter_this_build_does_not_ship_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(BetterCcflareError, match=rf"{variable}='(grpc|zipkin)'"):
        async with running_proxy(tmp_path, BETTER_CCFLARE_TRACING="true"):
            pass


def test_with_tracing_off_neither_the_sdk_nor_our_tracing_is_imported(tmp_path: Path) -> None:
    # Litestar itself probes for the bare ``opentelemetry`` package (and its semantic
    # conventions) when it is installed; the SDK, the exporter, the tracing API and our tracing
    # modules load only with the setting on.
    script = """
import asyncio, sys
TRACING = (
    "opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.trace",
    "opentelemetry.context", "better_ccflare.server._tracing",
)
from pathlib import Path
from better_ccflare.core import load_config
from better_ccflare.server import Service

async def main() -> None:
    config = load_config({"XDG_CONFIG_HOME": sys.argv[1]}, cwd=Path(sys.argv[1]))
    async with Service.running(config, jobs=False) as service:
        assert service.tracing is None

asyncio.run(main())
print(sorted(name for name in sys.modules if name.startswith(TRACING)))
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.strip() == "[]"


class FakeCollector:
    """An OTLP/HTTP trace receiver: keeps each export request, decoded."""

    def __init__(self) -> None:
        self.exports: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.paths.append(scope["path"])
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        self.exports.append(export)
        reply = ExportTraceServiceResponse().SerializeToString()
        headers = [(b"content-type", b"application/x-protobuf")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": reply})

    def spans(self) -> list[ProtoSpan]:
        return [
            span
            for export in self.exports
            for resource in export.resource_spans
            for scoped in resource.scope_spans
            for span in scoped.spans
        ]

    def service_names(self) -> set[str]:
        return {
            _value(attribute)
            for export in self.exports
            for resource in export.resource_spans
            for attribute in resource.resource.attributes
            if attribute.key == "service.name"
        }


def _value(attribute: KeyValue) -> Any:
    value = attribute.value
    return getattr(value, value.WhichOneof("value") or "string_value")


def proto_attrs(span: ProtoSpan) -> dict[str, Any]:
    return {attribute.key: _value(attribute) for attribute in span.attributes}


async def test_spans_reach_an_otlp_collector_configured_by_the_standard_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = FakeCollector()
    async with serving(collector) as collector_url, FakeUpstream() as upstream:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector_url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "proxy-under-test")
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        accounts = (console_account("a", upstream), console_account("b", upstream))
        async with running_proxy(tmp_path, *accounts, BETTER_CCFLARE_TRACING="true") as (
            service,
            url,
        ):
            upstream.enqueue(*quota_then_served())
            await ask_traced(url)
            [record] = await recorded(service)
        # Leaving the service flushed the batch processor: the export has been answered.
        await asyncio.sleep(0)

    assert set(collector.paths) == {"/v1/traces"}
    assert collector.service_names() == {"proxy-under-test"}
    spans = collector.spans()
    [request] = [s for s in spans if s.kind == ProtoSpan.SpanKind.SPAN_KIND_SERVER]
    attempts = sorted(
        (s for s in spans if s.kind == ProtoSpan.SpanKind.SPAN_KIND_CLIENT),
        key=lambda s: s.start_time_unix_nano,
    )
    assert len(spans) == 3
    assert request.trace_id == CLIENT_TRACE_ID.to_bytes(16, "big")
    assert request.parent_span_id == CLIENT_SPAN_ID.to_bytes(8, "big")
    assert proto_attrs(request)["better_ccflare.request_id"] == record.id
    assert proto_attrs(request)["better_ccflare.account"] == "b"
    for attempt in attempts:
        assert attempt.parent_span_id == request.span_id
        assert attempt.trace_id == request.trace_id
    failed, served = (proto_attrs(a) for a in attempts)
    assert failed["better_ccflare.account"] == "a"
    assert failed["better_ccflare.failover_reason"] == "account_quota"
    assert failed["http.response.status_code"] == 429
    assert served["better_ccflare.account"] == "b"
    assert served["http.response.status_code"] == 200
    assert attempts[0].status.code == attempts[0].status.STATUS_CODE_ERROR
