"""OpenTelemetry set-up: one tracer provider per process, exporter chosen by settings."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from .settings import ServiceSettings


def create_tracer_provider(service_name: str, settings: ServiceSettings) -> TracerProvider:
    """A tracer provider that exports as `settings.telemetry_exporter` says.

    With "none" spans are still created, so trace context still travels in NATS
    headers and log lines carry a trace id; they are just not exported.
    """
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
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
