"""The OpenTelemetry SDK set up from the standard ``OTEL_*`` environment variables.

Imported only when ``BETTER_CCFLARE_TRACING`` is on (it needs the ``otel`` extra). The SDK
reads most variables itself: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (the
resource), ``OTEL_TRACES_SAMPLER`` and its argument, ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``..._HEADERS``, ``..._TIMEOUT``, ``..._COMPRESSION``
and the batch processor's ``OTEL_BSP_*``. This module reads the two that choose what is built:
``OTEL_TRACES_EXPORTER`` (``otlp``, the default, ``console`` or ``none``, comma-separated) and
the OTLP protocol, of which only ``http/protobuf`` is shipped.

Spans leave through a ``BatchSpanProcessor``: ending a span only queues it, and the export
runs on the SDK's own thread, never on the event loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from better_ccflare.core import ConfigError

__all__ = ["DEFAULT_SERVICE_NAME", "tracer_provider_from_environment"]

DEFAULT_SERVICE_NAME = "better-ccflare"
"""The service name unless ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` gives one."""

_PROTOCOL = "http/protobuf"


def tracer_provider_from_environment(environ: Mapping[str, str] | None = None) -> TracerProvider:
    """A tracer provider exporting as ``OTEL_*`` says; shut it down to flush its last spans.

    Args:
        environ: Where ``OTEL_TRACES_EXPORTER`` and the protocol are read; the process
            environment by default (the SDK reads the other variables from it in any case).

    Raises:
        ConfigError: An exporter or OTLP protocol this build does not ship.
    """
    env = os.environ if environ is None else environ
    exporters = [
        _exporter(name.strip(), env)
        for name in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
        if name.strip() and name.strip() != "none"
    ]
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    if name == "otlp":
        for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            protocol = env.get(variable)
            if protocol and protocol.strip() != _PROTOCOL:
                raise ConfigError(variable, protocol, f"{_PROTOCOL} (OTLP/HTTP)", "environment")
            if protocol:
                break
        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    raise ConfigError("OTEL_TRACES_EXPORTER", name, "otlp, console or none", "environment")
