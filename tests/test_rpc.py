"""Request/reply between services (`chatbus_runtime.rpc`) against a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import uuid4

import pytest
from chatbus_contracts.common import Model
from chatbus_runtime import rpc
from chatbus_runtime.bus import start_broker
from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .eventbus import broker_at
from .infra import Infra

pytestmark = pytest.mark.integration


class Ask(Model):
    n: int


class Answer(Model):
    double: int


@asynccontextmanager
async def _answering(
    infra: Infra, subject: str, traced_by: TracerProvider | None = None, **options: int
) -> AsyncIterator[NatsBroker]:
    """A process answering `subject` with twice the number asked (a 9 takes a while)."""
    async with broker_at(infra.nats_url, "rpc-test") as broker:
        if traced_by is not None:
            rpc.trace_responders(broker, traced_by)

        @rpc.replies_to(broker, subject, Ask, queue="rpc-test", **options)
        async def double(ask: Ask) -> Answer:
            if ask.n == 9:
                await asyncio.sleep(0.5)
            return Answer(double=2 * ask.n)

        await start_broker(broker)
        yield broker


async def _ask(broker: NatsBroker, subject: str, n: int) -> Answer:
    reply = await rpc.request(broker, subject, Ask(n=n), timeout_seconds=5)
    return Answer.model_validate_json(reply)


async def test_an_answer_comes_back_and_a_bad_request_gets_none(infra: Infra) -> None:
    subject = f"test.rpc.{uuid4().hex}"
    async with _answering(infra, subject) as broker:
        assert await _ask(broker, subject, 21) == Answer(double=42)
        with pytest.raises(TimeoutError):
            await broker.connection.request(subject, b'{"n": "many"}', timeout=0.5)
        assert await _ask(broker, subject, 4) == Answer(double=8)  # still answering


async def test_max_workers_answer_at_once(infra: Infra) -> None:
    subject = f"test.rpc.{uuid4().hex}"
    async with _answering(infra, subject, max_workers=2) as broker:
        slow = asyncio.create_task(_ask(broker, subject, 9))
        await asyncio.sleep(0.1)
        assert await asyncio.wait_for(_ask(broker, subject, 1), 0.3) == Answer(double=2)
        assert await slow == Answer(double=18)
    async with _answering(infra, subject, max_workers=1) as broker:
        slow = asyncio.create_task(_ask(broker, subject, 9))
        await asyncio.sleep(0.1)
        with pytest.raises(TimeoutError):  # waits behind the slow one
            await asyncio.wait_for(_ask(broker, subject, 1), 0.3)
        await slow


async def test_stopping_answers_what_was_received_and_then_nothing(infra: Infra) -> None:
    subject = f"test.rpc.{uuid4().hex}"
    async with broker_at(infra.nats_url, "asker") as asker, _answering(infra, subject) as answering:
        slow = asyncio.create_task(_ask(asker, subject, 9))
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(_ask(asker, subject, 5))  # behind the slow one
        await asyncio.sleep(0.1)
        stopping = asyncio.create_task(rpc.stop_responders(answering))
        assert await slow == Answer(double=18)
        assert await waiting == Answer(double=10)
        await stopping
        with pytest.raises(NoRespondersError):  # nobody answers any more
            await _ask(asker, subject, 1)


async def test_the_answer_is_part_of_the_askers_trace(infra: Infra) -> None:
    subject = f"test.rpc.{uuid4().hex}"
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    async with _answering(infra, subject, provider) as broker:
        with trace.get_tracer("test", tracer_provider=provider).start_as_current_span("ask") as ask:
            await _ask(broker, subject, 1)
    [answered] = [span for span in spans.get_finished_spans() if span.name != "ask"]
    assert answered.name == f"{subject} process"
    assert answered.context.trace_id == ask.get_span_context().trace_id
