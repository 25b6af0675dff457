"""Request/reply between services (`chatbus_runtime.rpc`) against a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import uuid4

import pytest
from chatbus_contracts.common import Model
from chatbus_runtime import rpc
from chatbus_runtime.bus import start_broker
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from .eventbus import broker_at
from .infra import Infra

pytestmark = pytest.mark.integration

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Ask(Model):
    n: int


class Answer(Model):
    double: int


@asynccontextmanager
async def _answering(
    infra: Infra, subject: str, traced_by: TracerProvider | None = None, **options: int
) -> AsyncIterator[NatsBroker]:
    """A process answering `subject` with twice the number asked (a 9 takes a while, a
    13 fails)."""
    async with broker_at(infra.nats_url, "rpc-test") as broker:
        if traced_by is not None:
            rpc.trace_responders(broker, traced_by)

        @rpc.replies_to(broker, subject, Ask, queue="rpc-test", **options)
        async def double(ask: Ask) -> Answer:
            if ask.n == 9:
                await asyncio.sleep(0.5)
            if ask.n == 13:
                raise ValueError("unlucky")
            return Answer(double=2 * ask.n)

        await start_broker(broker)
        yield broker


async def _until_answered(broker: NatsBroker, subject: str) -> None:
    """Once `subject` answers `broker`'s requests. A request from another connection right
    after the subscription was flushed got a no-responders about once in a hundred
    (nats-py 2.16, nats-server 2.15, measured); answering services live far longer."""
    for _ in range(100):
        with contextlib.suppress(NoRespondersError):
            await _ask(broker, subject, 1)
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{subject} never answered")


async def _sent(broker: NatsBroker) -> None:
    """Once the requests of the tasks just created are at the server (routed, in order)."""
    for _ in range(3):
        await asyncio.sleep(0)
    await broker.connection.flush()


async def _ask(broker: NatsBroker, subject: str, n: int) -> Answer:
    return await rpc.ask(broker, subject, Ask(n=n), Answer, timeout_seconds=5)


async def test_an_answer_comes_back_and_a_bad_request_an_error_at_once(infra: Infra) -> None:
    subject = f"test.rpc.{uuid4().hex}"
    async with _answering(infra, subject) as broker:
        assert await _ask(broker, subject, 21) == Answer(double=42)
        reply = await broker.connection.request(
            subject, b'{"n": 2}', timeout=5, headers={"traceparent": TRACEPARENT}
        )
        assert reply.data == b'{"double":4}' and not reply.headers  # no headers echoed
        reply = await broker.connection.request(subject, b'{"n": "many"}', timeout=5)
        assert reply.headers == {
            rpc.ERROR_CODE_HEADER: "400",
            rpc.ERROR_HEADER: "not a Ask",
        }
        assert await _ask(broker, subject, 4) == Answer(double=8)  # still answering


async def test_a_failed_answer_is_an_error_for_the_asker_at_once(infra: Infra) -> None:
    subject = f"test.rpc.{uuid4().hex}"
    async with _answering(infra, subject) as broker:
        with pytest.raises(rpc.NoAnswer) as failed:
            await asyncio.wait_for(_ask(broker, subject, 13), 2)  # its timeout is 5 s
        assert (failed.value.code, failed.value.description) == ("500", "ValueError")
        assert isinstance(failed.value, NatsError)  # what askers catch already
        assert await _ask(broker, subject, 4) == Answer(double=8)


class OtherAnswer(Model):
    half: int


async def test_an_answer_that_is_not_the_model_asked_for_is_no_answer(
    infra: Infra, caplog: pytest.LogCaptureFixture
) -> None:
    subject = f"test.rpc.{uuid4().hex}"
    async with _answering(infra, subject) as broker:
        with pytest.raises(rpc.NoAnswer) as wrong:  # a responder of another version, say
            await rpc.ask(broker, subject, Ask(n=3), OtherAnswer, timeout_seconds=5)
        assert (wrong.value.code, wrong.value.description) == ("502", "not a OtherAnswer")
    (logged,) = [r.getMessage() for r in caplog.records if r.name == rpc.__name__]
    assert "['double', 'half']" in logged  # the fields, never their values (users' text)
    assert "input_value" not in logged and "6" not in logged.removeprefix(subject)


async def test_max_workers_answer_at_once(infra: Infra) -> None:
    subject = f"test.rpc.{uuid4().hex}"
    async with _answering(infra, subject, max_workers=2) as broker:
        slow = asyncio.create_task(_ask(broker, subject, 9))
        await _sent(broker)
        assert await asyncio.wait_for(_ask(broker, subject, 1), 0.3) == Answer(double=2)
        assert await slow == Answer(double=18)
    async with _answering(infra, subject, max_workers=1) as broker:
        slow = asyncio.create_task(_ask(broker, subject, 9))
        await _sent(broker)
        with pytest.raises(TimeoutError):  # waits behind the slow one
            await asyncio.wait_for(_ask(broker, subject, 1), 0.3)
        await slow


async def test_stopping_answers_what_was_received_and_then_nothing(infra: Infra) -> None:
    subject = f"test.rpc.{uuid4().hex}"
    async with broker_at(infra.nats_url, "asker") as asker, _answering(infra, subject) as answering:
        await _until_answered(asker, subject)
        slow = asyncio.create_task(_ask(asker, subject, 9))
        await _sent(asker)
        waiting = asyncio.create_task(_ask(asker, subject, 5))  # behind the slow one
        await _sent(asker)
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
            with pytest.raises(rpc.NoAnswer):
                await rpc.request(broker, subject, Ask(n=13), timeout_seconds=5)
    answered, failed = [span for span in spans.get_finished_spans() if span.name != "ask"]
    assert answered.name == failed.name == f"{subject} process"
    assert answered.context.trace_id == failed.context.trace_id == ask.get_span_context().trace_id
    assert answered.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR


async def test_a_stop_that_runs_out_of_time_starts_no_more_answers(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rpc, "STOP_GRACE_SECONDS", 0.1)
    subject = f"test.rpc.{uuid4().hex}"
    async with broker_at(infra.nats_url, "asker") as asker, _answering(infra, subject) as answering:
        await _until_answered(asker, subject)
        asks = [asyncio.create_task(_ask(asker, subject, 9)) for _ in range(4)]  # one at a time
        await _sent(asker)
        await rpc.stop_responders(answering)  # the running one cancelled, three still queued
        outcomes = await asyncio.gather(*asks, return_exceptions=True)
    assert all(isinstance(outcome, TimeoutError) for outcome in outcomes), outcomes
