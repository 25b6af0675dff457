"""The conversation service's read-your-writes barrier (`EventsReadBarrier`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from chatbus_contracts.streams import ConsumerSpec
from chatbus_conversation.barrier import EventsReadBarrier
from chatbus_runtime.bus import declare_consumer, declare_streams
from nats.js import JetStreamContext

from .eventbus import broker_at, jetstream, scratch_stream
from .infra import Infra

pytestmark = pytest.mark.integration


async def test_waiters_share_one_ack_floor_poll_and_pass_once_the_consumer_caught_up(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = scratch_stream("barrier_test")
    spec = ConsumerSpec(durable="projection", stream=stream, filter_subjects=stream.subjects)
    polls = 0
    consumer_info = JetStreamContext.consumer_info

    async def counted(self: JetStreamContext, *args: Any, **kwargs: Any) -> Any:
        nonlocal polls
        polls += 1
        return await consumer_info(self, *args, **kwargs)

    monkeypatch.setattr(JetStreamContext, "consumer_info", counted)
    async with broker_at(infra.nats_url, "barrier-test") as broker, jetstream(infra) as js:
        await declare_streams(broker, (stream,))
        await declare_consumer(broker, spec)
        for n in range(3):
            await js.publish(stream.subjects[0], b"%d" % n)
        barrier = EventsReadBarrier(broker, spec, stream.subjects[0], timeout_seconds=10)

        assert await barrier.wait(0.2) is False  # nothing acked: it times out
        # Waiters in no hurry (commands) are served by a slower poll ...
        waits = [asyncio.create_task(barrier.wait(poll_seconds=0.2)) for _ in range(3)]
        polls = 0
        await asyncio.sleep(0.5)  # polled at 0, 0.2 and 0.4 s; next at 0.6 s
        assert polls <= 4, polls
        # ... until a reader waits too.
        waits += [asyncio.create_task(barrier.wait()) for _ in range(20)]
        polls = 0
        await asyncio.sleep(0.05)
        assert polls >= 2, polls  # at once, not at the slow poll's next turn
        await asyncio.sleep(0.45)
        assert not any(wait.done() for wait in waits)
        # One poll every 3 ms for all 23 (each polling on its own: ~20 times as many).
        assert 30 < polls < 300, polls

        projection = await js.pull_subscribe_bind(spec.durable, stream.name)
        for message in await projection.fetch(3, timeout=5):
            await message.ack_sync()
        assert await asyncio.wait_for(asyncio.gather(*waits), 5) == [True] * 23
        assert await barrier.wait(0.01) is True  # caught up: no wait at all
        await js.delete_stream(stream.name)
