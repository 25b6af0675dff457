"""Durable JetStream consumers, pulled with nats-py rather than through FastStream.

Every durable consumer of chatbus (conversation's, usage's, embeddings', inference's
requests) is a `DurableConsumer` (request/reply is `chatbus_runtime.rpc`; FastStream
keeps the connection, core publishes and inference's `chat.cancel.*`). Measured in one
process against nats-server from the wheel (4,000 messages, a handler that does
nothing): a FastStream pull subscriber with chatbus' middlewares took 0.28 to 0.37 ms of
CPU per message, this loop 0.03 to 0.05 ms (docs/decisions.md). What a consumer does:

    fetch up to `batch_size` messages (waiting up to 5 s for the first)
    hand each to the handler (concurrently within one fetch), or the whole fetch to a
    batch handler, in the trace context of the message's headers
        returns                   -> acked (or left to the handler: `manual_ack`)
        raises, Postgres or NATS
        cannot be reached         -> held through the outage (`chatbus_runtime.outages`)
        raises, anything else     -> nak'ed with backoff, or dead-lettered on the last
                                     delivery (`DeadLetterOffice.settle_failure`)

A consumer with `max_workers` > 1 fetches one message per free worker, so when every
worker is busy it fetches nothing and another replica takes the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from chatbus_contracts.streams import ConsumerSpec
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext
from opentelemetry import trace

from .deadletters import dead_letter_office
from .outages import hold_through_outage, is_transient
from .redelivery import outages_of
from .registry import STOP_GRACE_SECONDS, BrokerRegistry, Workers, handling_span

logger = logging.getLogger(__name__)

# A fetch waits this long for its first message (a batch handler's fetch: to fill up).
FETCH_TIMEOUT_SECONDS = 5.0
# After a failed fetch (NATS away), the next one waits this long.
FETCH_RETRY_SECONDS = 0.5

Handler = Callable[[Msg], Awaitable[None]]
BatchHandler = Callable[[list[Msg]], Awaitable[None]]
_Call = Callable[[list[Msg]], Awaitable[None]]


class DurableConsumer:
    """A durable pull consumer declared from `spec` and the handler its messages go to."""

    def __init__(
        self,
        broker: NatsBroker,
        spec: ConsumerSpec,
        call: _Call,
        *,
        tracer: trace.Tracer,
        batch_size: int = 1,
        whole_batches: bool = False,
        max_workers: int = 1,
        manual_ack: bool = False,
    ) -> None:
        self.spec = spec
        self.name = f"{spec.stream.name}/{spec.durable}"
        self._broker = broker
        self._call = call
        self._tracer = tracer
        self._fetch_size = batch_size if max_workers == 1 else 1
        self._whole_batches = whole_batches
        self._manual_ack = manual_ack
        self._workers = Workers(max_workers)
        self._stopping = asyncio.Event()
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._fetching: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind to the declared consumer and start fetching."""
        js = self._broker.connection.jetstream()
        self._subscription = await js.pull_subscribe_bind(self.spec.durable, self.spec.stream.name)
        self._fetching = asyncio.create_task(self._fetch_loop(), name=f"consumer {self.name}")

    async def stop_fetching(self) -> None:
        """Fetch nothing more; messages being handled go on.

        A fetch under way is abandoned: a message it was about to receive comes back
        after the consumer's ack wait.
        """
        self._stopping.set()
        if self._fetching is not None:
            self._fetching.cancel()
            await asyncio.wait([self._fetching])

    async def stop(self) -> None:
        """Stop fetching, let handlers finish (`STOP_GRACE_SECONDS`), then unsubscribe.

        Held messages are handed back at once (`hold_through_outage` sees the stop).
        """
        await self.stop_fetching()
        await self._workers.finish(STOP_GRACE_SECONDS)
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            with contextlib.suppress(NatsError):
                await subscription.unsubscribe()

    async def _fetch_loop(self) -> None:
        while not self._stopping.is_set():
            await self._workers.reserve()
            try:
                messages = await self._fetch()
            except BaseException:
                self._workers.release()
                raise
            if not messages:
                self._workers.release()
                continue
            self._workers.run(self._handle_fetched(messages))

    async def _fetch(self) -> list[Msg]:
        assert self._subscription is not None
        try:
            if self._whole_batches:
                return await self._fill(self._subscription)
            return await self._subscription.fetch(self._fetch_size, timeout=FETCH_TIMEOUT_SECONDS)
        except TimeoutError:  # nats-py's own TimeoutError is one too
            return []
        except NatsError as error:
            logger.debug("%s: fetch failed: %r", self.name, error)
            await asyncio.sleep(FETCH_RETRY_SECONDS)
            return []

    async def _fill(self, subscription: JetStreamContext.PullSubscription) -> list[Msg]:
        """Up to a full batch, fetched until `FETCH_TIMEOUT_SECONDS` have passed.

        nats-py returns what the server had at hand, often less than a batch; a backlog
        then still goes to the handler in full batches.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FETCH_TIMEOUT_SECONDS
        messages: list[Msg] = []
        while len(messages) < self._fetch_size and not self._stopping.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                messages += await subscription.fetch(
                    self._fetch_size - len(messages), timeout=remaining
                )
            except TimeoutError:
                break
        return messages

    async def _handle_fetched(self, messages: list[Msg]) -> None:
        if self._whole_batches or len(messages) == 1:
            await self._deliver(messages)
        else:
            await asyncio.gather(*(self._deliver([message]) for message in messages))

    async def _deliver(self, messages: list[Msg]) -> None:
        """Handle `messages` (one, or a batch handed over whole) and settle them."""
        first = messages[0]
        with handling_span(
            self._tracer,
            first.subject,
            first.headers,
            trace.SpanKind.CONSUMER,
            {
                "messaging.consumer.group.name": self.name,
                "messaging.batch.message_count": len(messages),
            },
        ):
            try:
                handled = await self._handle(messages)
            except Exception as error:
                logger.exception("%s: handler failed on %s", self.name, _positions(messages))
                await self._settle_failure(messages, error)
                return
        if self._manual_ack:
            return
        await _settle(messages, Msg.ack if handled else Msg.nak)

    async def _handle(self, messages: list[Msg]) -> bool:
        """True when the handler ran through; False when it was held and then stopped."""
        try:
            await self._call(messages)
        except Exception as error:
            if self._manual_ack or not is_transient(error):
                raise
            return await hold_through_outage(
                lambda: self._call(messages),
                error,
                held=messages,
                ack_wait_seconds=self.spec.ack_wait_seconds,
                stopping=self._stopping,
                outages=outages_of(dead_letter_office(self._broker)),
            )
        return True

    async def _settle_failure(self, messages: list[Msg], error: Exception) -> None:
        office = dead_letter_office(self._broker)
        for message in messages:
            try:
                await office.settle_failure(message, error)
            except (NatsError, TimeoutError) as failure:  # back after the ack wait
                logger.warning("%s: could not settle a failed message: %r", self.name, failure)


async def _settle(messages: list[Msg], settle: Callable[[Msg], Awaitable[None]]) -> None:
    """Ack or nak each message not settled yet (NATS away: it comes back after the ack wait)."""
    for message in messages:
        if message.is_acked:
            continue
        try:
            await settle(message)
        except NatsError as error:
            logger.debug("settling %s failed: %r", message.reply, error)


def _positions(messages: list[Msg]) -> str:
    return ", ".join(f"#{message.metadata.sequence.stream}" for message in messages)


_consumers: BrokerRegistry[DurableConsumer] = BrokerRegistry("chatbus.consumers")


def trace_consumers(broker: NatsBroker, tracer_provider: trace.TracerProvider) -> None:
    """Give the consumers of `broker` their tracer (`create_broker` does this once)."""
    _consumers.trace(broker, tracer_provider)


def consume(
    broker: NatsBroker,
    spec: ConsumerSpec,
    handler: Handler,
    *,
    batch_size: int = 1,
    max_workers: int = 1,
    manual_ack: bool = False,
) -> DurableConsumer:
    """Send each message of the durable consumer `spec` to `handler`, from `start_broker` on.

    `batch_size` messages are fetched at once and handled concurrently; with
    `max_workers` > 1, up to that many handlers run at once, one message each.
    `manual_ack`: the handler acks (or leaves the message to come back); a failure is
    never held through an outage, only nak'ed with backoff or dead-lettered.
    """

    async def one(messages: list[Msg]) -> None:
        await handler(messages[0])

    registry = _consumers.of(broker)
    consumer = DurableConsumer(
        broker,
        spec,
        one,
        tracer=registry.tracer,
        batch_size=batch_size,
        max_workers=max_workers,
        manual_ack=manual_ack,
    )
    registry.all.append(consumer)
    return consumer


def consume_batches(
    broker: NatsBroker, spec: ConsumerSpec, handler: BatchHandler, *, batch_size: int
) -> DurableConsumer:
    """Send the messages of `spec` to `handler` in batches of up to `batch_size`.

    A fetch waits up to `FETCH_TIMEOUT_SECONDS` to fill its batch. The batch is acked,
    held or nak'ed as one.
    """
    registry = _consumers.of(broker)
    consumer = DurableConsumer(
        broker, spec, handler, tracer=registry.tracer, batch_size=batch_size, whole_batches=True
    )
    registry.all.append(consumer)
    return consumer


def registered_specs(broker: NatsBroker) -> list[ConsumerSpec]:
    """The durable consumers registered on `broker` (`start_broker` declares them)."""
    return [consumer.spec for consumer in _consumers.of(broker).all]


async def start_consumers(broker: NatsBroker) -> None:
    """Start every consumer registered on `broker` (their specs declared already)."""
    for consumer in _consumers.of(broker).all:
        await consumer.start()


async def stop_consumers(broker: NatsBroker) -> None:
    """Stop every consumer of `broker`, all at once."""
    await asyncio.gather(*(consumer.stop() for consumer in _consumers.of(broker).all))
