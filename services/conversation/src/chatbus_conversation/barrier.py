"""Read-your-writes for history queries.

A follow-up turn can be sent the instant `chat.end` arrives, before this service
has stored the previous turn's `message.created`. Inference publishes that event
(and waits for its PubAck) before it sends `chat.end`, so at query time the event
is already in the EVENTS stream. The barrier takes the stream sequence of the
newest `message.created` and waits, bounded, until this service's durable
consumer has acknowledged everything up to it: the consumer's ack floor is shared
by all replicas, so it holds whichever replica stored the event.
"""

from __future__ import annotations

import asyncio
import logging
import time

from chatbus_contracts.streams import ConsumerSpec
from faststream.nats import NatsBroker
from nats.js.errors import NotFoundError

logger = logging.getLogger(__name__)


class EventsReadBarrier:
    """Waits until a durable consumer has caught up with the newest event of one subject."""

    def __init__(
        self,
        broker: NatsBroker,
        consumer: ConsumerSpec,
        subject: str,
        *,
        timeout_seconds: float,
        poll_seconds: float = 0.003,
    ) -> None:
        self._broker = broker
        self._consumer = consumer
        self._subject = subject
        self._timeout = timeout_seconds
        self._poll = poll_seconds

    async def wait(self, timeout_seconds: float | None = None) -> bool:
        """True once caught up; False if the timeout passed first (the caller reads anyway).

        `timeout_seconds` overrides the barrier's own bound for this wait.
        """
        js = self._broker.connection.jetstream()
        stream = self._consumer.stream.name
        try:
            newest = await js.get_last_msg(stream, self._subject)
        except NotFoundError:
            return True
        target = newest.seq or 0
        deadline = time.monotonic() + (
            self._timeout if timeout_seconds is None else timeout_seconds
        )
        while True:
            info = await js.consumer_info(stream, self._consumer.durable)
            acked = info.ack_floor.stream_seq if info.ack_floor else 0
            if (acked or 0) >= target:
                return True
            if time.monotonic() >= deadline:
                logger.warning("history barrier timed out at seq %s (acked %s)", target, acked)
                return False
            await asyncio.sleep(self._poll)
