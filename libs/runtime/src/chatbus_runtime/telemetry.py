"""OpenTelemetry set-up: one tracer and one meter provider per process, exporter by settings."""

from __future__ import annotations

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from .settings import ServiceSettings


def create_tracer_provider(service_name: str, settings: ServiceSettings) -> TracerProvider:
    """A tracer provider that exports as `settings.telemetry_exporter` says.

    With "none" spans are not recorded (nothing would read them, and recording costs
    every message a few hundred microseconds), but they still carry ids: trace context
    travels in NATS headers and log lines carry a trace id.
    """
    resource = Resource.create({SERVICE_NAME: service_name})
    if settings.telemetry_exporter == "none":
        return TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    provider = TracerProvider(resource=resource)
    if settings.telemetry_exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif settings.telemetry_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint))
        )
    return provider


def install_global_tracer_provider(provider: TracerProvider) -> None:
    """Make `provider` the process-wide default (entry points do this; tests do not)."""
    trace.set_tracer_provider(provider)


def install_global_meter_provider(service_name: str, settings: ServiceSettings) -> None:
    """Export metrics (e.g. `chatbus.unpriced_calls`) like spans; nothing with "none"."""
    readers: list[MetricReader] = []
    if settings.telemetry_exporter == "console":
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    elif settings.telemetry_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        endpoint = settings.otlp_endpoint
        if endpoint and endpoint.endswith("/v1/traces"):
            endpoint = endpoint.removesuffix("/v1/traces") + "/v1/metrics"
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint)))
    resource = Resource.create({SERVICE_NAME: service_name})
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
