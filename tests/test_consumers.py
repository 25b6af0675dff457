"""Durable consumers (`chatbus_runtime.consumers`): workers, replicas, stopping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from chatbus_contracts.streams import ConsumerSpec
from chatbus_runtime.bus import declare_streams, start_broker
from chatbus_runtime.consumers import Handler, consume
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from .eventbus import broker_at, jetstream, scratch_stream
from .infra import Infra

pytestmark = pytest.mark.integration


def _spec() -> ConsumerSpec:
    stream = scratch_stream("consumer_test")
    return ConsumerSpec(durable="worker", stream=stream, filter_subjects=stream.subjects)


@asynccontextmanager
async def _replica(
    infra: Infra, spec: ConsumerSpec, handler: Handler, **options: int
) -> AsyncIterator[NatsBroker]:
    """A process of a service whose one durable consumer is `spec`."""
    async with broker_at(infra.nats_url, "consumer-test") as broker:
        consume(broker, spec, handler, **options)
        await declare_streams(broker, (spec.stream,))
        await start_broker(broker)
        yield broker


async def _until(condition: asyncio.Event | asyncio.Future[object], seconds: float = 10) -> None:
    waiter = condition.wait() if isinstance(condition, asyncio.Event) else condition
    await asyncio.wait_for(waiter, seconds)


async def _unacked(js: JetStreamContext, spec: ConsumerSpec) -> tuple[int, int]:
    """(messages not delivered yet, delivered and not acked)."""
    info = await js.consumer_info(spec.stream.name, spec.durable)
    return info.num_pending, info.num_ack_pending


async def test_a_busy_replica_leaves_the_next_message_to_another(infra: Infra) -> None:
    spec = _spec()
    release = asyncio.Event()
    busy = asyncio.Event()
    by_other: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def slow(msg: Msg) -> None:
        busy.set()
        await release.wait()

    async def other(msg: Msg) -> None:
        by_other.set_result(msg.data)

    async with jetstream(infra) as js, _replica(infra, spec, slow, max_workers=1):
        await js.publish(spec.stream.subjects[0], b"first")
        await _until(busy)
        async with _replica(infra, spec, other, max_workers=1):
            await js.publish(spec.stream.subjects[0], b"second")
            await _until(by_other)
        assert by_other.result() == b"second"
        assert await _unacked(js, spec) == (0, 1)  # the first, still being handled
        release.set()
        for _ in range(50):
            if await _unacked(js, spec) == (0, 0):
                break
            await asyncio.sleep(0.1)
        assert await _unacked(js, spec) == (0, 0)
        await js.delete_stream(spec.stream.name)


async def test_max_workers_bounds_the_messages_handled_at_once(infra: Infra) -> None:
    spec = _spec()
    running: list[bytes] = []
    release = asyncio.Event()
    three = asyncio.Event()

    async def handler(msg: Msg) -> None:
        running.append(msg.data)
        if len(running) == 3:
            three.set()
        await release.wait()

    async with jetstream(infra) as js, _replica(infra, spec, handler, max_workers=3):
        for n in range(5):
            await js.publish(spec.stream.subjects[0], b"%d" % n)
        await _until(three)
        await asyncio.sleep(0.5)  # a fourth would have been fetched by now
        assert running == [b"0", b"1", b"2"]
        assert await _unacked(js, spec) == (2, 3)
        release.set()
        for _ in range(50):
            if await _unacked(js, spec) == (0, 0):
                break
            await asyncio.sleep(0.1)
        assert sorted(running) == [b"0", b"1", b"2", b"3", b"4"]
        await js.delete_stream(spec.stream.name)


async def test_stopping_lets_a_running_handler_finish_and_acks_it(infra: Infra) -> None:
    spec = _spec()
    started = asyncio.Event()
    finished: list[bytes] = []

    async def handler(msg: Msg) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.append(msg.data)

    async with jetstream(infra) as js:
        async with _replica(infra, spec, handler):
            await js.publish(spec.stream.subjects[0], b"in flight")
            await _until(started)
        # Stopped: the handler ran to its end, and its ack went out before the close.
        assert finished == [b"in flight"]
        assert await _unacked(js, spec) == (0, 0)
        await js.delete_stream(spec.stream.name)
