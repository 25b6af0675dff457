"""Read-your-writes for history queries.

A follow-up turn can be sent the instant `chat.end` arrives, before this service
has stored the previous turn's `message.created`. Inference publishes that event
(and waits for its PubAck) before it sends `chat.end`, so at query time the event
is already in the EVENTS stream. The barrier takes the stream sequence of the
newest `message.created` and waits, bounded, until this service's durable
consumer has acknowledged everything up to it: the consumer's ack floor is shared
by all replicas, so it holds whichever replica stored the event.

History, listing and message reads wait on it, and so do commands that found no
conversation (a title proposed while `conversation.created` is still in the backlog).
However many wait, one consumer-info request serves them all: every 3 ms while a
reader waits, every 20 ms while only commands do (`COMMAND_POLL_SECONDS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from chatbus_contracts.streams import ConsumerSpec
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
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
        self._acked = 0  # the newest ack floor seen (it only grows)
        self._waiters: list[_Waiter] = []
        self._polling: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()  # a waiter came that may want an earlier poll

    async def wait(
        self, timeout_seconds: float | None = None, *, poll_seconds: float | None = None
    ) -> bool:
        """True once caught up; False if the timeout passed first (the caller reads anyway).

        `timeout_seconds` overrides the barrier's own bound for this wait; `poll_seconds`
        its poll interval, for a waiter in less of a hurry than a reader (the ack floor is
        polled as often as the most hurried waiter asks).
        """
        js = self._broker.connection.jetstream()
        try:
            newest = await js.get_last_msg(self._consumer.stream.name, self._subject)
        except NotFoundError:
            return True
        target = newest.seq or 0
        if self._acked >= target:
            return True
        waiter = _Waiter(target, poll_seconds or self._poll)
        self._waiters.append(waiter)
        if self._polling is None or self._polling.done():
            self._polling = asyncio.create_task(self._poll_ack_floor())
        else:
            self._hurry.set()  # the poller may be asleep for longer than this one waits
        timeout = self._timeout if timeout_seconds is None else timeout_seconds
        try:
            done, _ = await asyncio.wait([waiter.caught_up], timeout=timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        if not done:
            logger.warning("events barrier timed out at seq %s (acked %s)", target, self._acked)
        return bool(done)

    async def _poll_ack_floor(self) -> None:
        """One consumer-info request per poll while anyone waits, shared by all of them."""
        js = self._broker.connection.jetstream()
        while self._waiters:
            try:
                info = await js.consumer_info(self._consumer.stream.name, self._consumer.durable)
            except (NatsError, TimeoutError) as error:  # the waiters time out meanwhile
                logger.debug("events barrier: consumer info failed: %r", error)
            else:
                floor = info.ack_floor.stream_seq if info.ack_floor else 0
                self._acked = max(self._acked, floor or 0)
                for waiter in [w for w in self._waiters if w.target <= self._acked]:
                    self._waiters.remove(waiter)
                    waiter.caught_up.set_result(None)
            if self._waiters:
                self._hurry.clear()
                interval = min(waiter.poll_seconds for waiter in self._waiters)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), interval)


@dataclass(eq=False)
class _Waiter:
    target: int  # the stream sequence to be acked
    poll_seconds: float
    caught_up: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
