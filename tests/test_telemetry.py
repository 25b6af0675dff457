"""Tracer providers per exporter setting."""

from __future__ import annotations

from chatbus_runtime.settings import ServiceSettings
from chatbus_runtime.telemetry import create_tracer_provider


def test_without_an_exporter_spans_are_not_recorded_but_carry_trace_ids() -> None:
    provider = create_tracer_provider("test", ServiceSettings(telemetry_exporter="none"))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("parent") as parent,
        tracer.start_as_current_span("child") as child,
    ):
        assert not child.is_recording()
        assert child.get_span_context().is_valid
        assert child.get_span_context().trace_id == parent.get_span_context().trace_id


def test_with_an_exporter_spans_are_recorded() -> None:
    provider = create_tracer_provider("test", ServiceSettings(telemetry_exporter="console"))
    with provider.get_tracer("test").start_as_current_span("span") as span:
        assert span.is_recording()
    provider.shutdown()
