"""Dead letters: a message its consumer gave up on moves to DEAD_LETTERS, with the reason.

A message runs out of deliveries in one of two ways, and both end in `DeadLetterOffice.file`:

    handler raised on the consumer's last delivery
        its consumer -> settle_failure: file it (handler_error, the exception),
        then terminate it on the consumer
    the process died or hung on it every time (or it was nak'ed outside chatbus' consumers)
        JetStream gives up and announces $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<s>.<c>;
        each service listens for its own consumers (one replica per advisory: a queue
        group), fetches the original by stream sequence and files it (max_deliveries);
        a work-queue original is then deleted, as an ack would have

Filing is idempotent: the dead letter's `Nats-Msg-Id` names the original and the consumer,
so a second filing inside the dedupe window is dropped and runs no hook. A filed letter
counts in `chatbus.dead_letters` and runs the hooks services register for the consumer
(inference ends the turn for the client).
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chatbus_contracts.deadletters import (
    DeadLetter,
    dead_letter_headers,
    dead_letter_subject,
    max_deliveries_advisory,
    short_error,
)
from chatbus_contracts.streams import DEAD_LETTERS, ConsumerSpec
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from opentelemetry import metrics
from pydantic import BaseModel, ConfigDict, ValidationError

from .redelivery import RedeliveryPolicy

logger = logging.getLogger(__name__)

# Replicas of a service share each advisory: one of them files the dead letter.
ADVISORY_QUEUE = "chatbus-dead-letters"
FILE_TIMEOUT_SECONDS = 5.0  # as long as any event publish waits for its PubAck

DeadLetterHook = Callable[[DeadLetter, bytes], Awaitable[None]]


class MaxDeliveriesAdvisory(BaseModel):
    """What we read of JetStream's `io.nats.jetstream.advisory.v1.max_deliver`."""

    model_config = ConfigDict(extra="ignore")

    stream: str
    consumer: str
    stream_seq: int
    deliveries: int


@dataclass(frozen=True)
class _Tracked:
    spec: ConsumerSpec
    max_deliver: int  # as declared on the server; ≤ 0: no limit

    def is_last(self, num_delivered: int) -> bool:
        return 0 < self.max_deliver <= num_delivered


class DeadLetterOffice:
    """One broker's dead letters: which consumers, their limits, the hooks and the metric."""

    def __init__(
        self,
        broker: NatsBroker,
        policy: RedeliveryPolicy,
        *,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        # Weak: the broker keeps its office (`_offices`), not the other way round.
        self._broker = weakref.ref(broker)
        self.policy = policy
        self._tracked: dict[tuple[str, str], _Tracked] = {}
        self._hooks: dict[tuple[str, str], list[DeadLetterHook]] = {}
        self.count_into(meter_provider)

    def count_into(self, meter_provider: metrics.MeterProvider | None) -> None:
        """Count dead letters with this meter provider (None: the process's global one)."""
        meter = metrics.get_meter("chatbus.runtime", meter_provider=meter_provider)
        self._counter = meter.create_counter(
            "chatbus.dead_letters",
            unit="{message}",
            description="Messages moved to DEAD_LETTERS, by consumer and reason.",
        )

    def track(self, spec: ConsumerSpec, max_deliver: int) -> None:
        """Dead-letter `spec`'s messages after `max_deliver` deliveries (its server config)."""
        self._tracked[spec.stream.name, spec.durable] = _Tracked(spec, max_deliver)

    def on_dead_letter(self, spec: ConsumerSpec, hook: DeadLetterHook) -> None:
        """Run `hook(letter, original payload)` after each new dead letter of `spec`."""
        self._hooks.setdefault((spec.stream.name, spec.durable), []).append(hook)

    async def listen(self) -> None:
        """Subscribe to the max-deliveries advisory of every tracked consumer."""
        connection = self._connection()
        for stream, consumer in self._tracked:
            await connection.subscribe(
                max_deliveries_advisory(stream, consumer),
                queue=ADVISORY_QUEUE,
                cb=self._on_advisory,
            )

    async def settle_failure(self, msg: Msg, error: Exception) -> None:
        """A handler failed on `msg`: nak it with a delay, or file it on the last delivery."""
        try:
            metadata = msg.metadata
        except (NatsError, ValueError, AttributeError):
            return  # a core NATS message: nothing to redeliver
        if msg.is_acked:
            return  # the handler settled it itself
        delivered = metadata.num_delivered or 1
        tracked = self._tracked.get((metadata.stream, metadata.consumer))
        if tracked is None or not tracked.is_last(delivered):
            await msg.nak(delay=self.policy.delay(delivered))
            return
        letter = DeadLetter(
            consumer=metadata.consumer,
            stream=metadata.stream,
            subject=msg.subject,
            stream_seq=metadata.sequence.stream,
            deliveries=delivered,
            reason="handler_error",
            error_type=type(error).__name__,
            error=short_error(error),
            headers=dict(msg.headers or {}),
            published_at=metadata.timestamp,
        )
        try:
            await self.file(letter, msg.data)
        except (NatsError, TimeoutError):
            # Nak'ed on its last delivery, JetStream gives up on it and sends the advisory,
            # which files it once NATS answers again.
            logger.exception("could not dead-letter %s #%d", letter.stream, letter.stream_seq)
            await msg.nak(delay=self.policy.delay(delivered))
            return
        await msg.term()

    async def file(self, letter: DeadLetter, payload: bytes) -> bool:
        """Publish the dead letter; count it and run the hooks. False if it was filed before."""
        js = self._connection().jetstream()
        ack = await js.publish(
            dead_letter_subject(letter.stream, letter.consumer),
            payload,
            timeout=FILE_TIMEOUT_SECONDS,
            stream=DEAD_LETTERS.name,
            headers=dead_letter_headers(letter),
        )
        if ack.duplicate:
            return False
        logger.warning(
            "dead-lettered %s #%d (%s) for %s after %d deliveries as %s #%d: %s",
            letter.stream,
            letter.stream_seq,
            letter.subject,
            letter.consumer,
            letter.deliveries,
            DEAD_LETTERS.name,
            ack.seq,
            letter.error,
        )
        self._counter.add(1, {"consumer": letter.consumer, "reason": letter.reason})
        for hook in self._hooks.get((letter.stream, letter.consumer), []):
            try:
                await hook(letter, payload)
            except Exception:
                logger.exception("a dead-letter hook of %s failed", letter.consumer)
        return True

    async def _on_advisory(self, msg: Msg) -> None:
        try:
            advisory = MaxDeliveriesAdvisory.model_validate_json(msg.data)
            await self._file_given_up(advisory)
        except (ValidationError, NatsError, TimeoutError):
            logger.exception("could not dead-letter after the advisory %r", msg.data)

    async def _file_given_up(self, advisory: MaxDeliveriesAdvisory) -> None:
        js = self._connection().jetstream()
        try:
            original = await js.get_msg(advisory.stream, advisory.stream_seq)
        except NotFoundError:
            logger.error(
                "%s #%d exhausted %s's deliveries but is gone from the stream",
                advisory.stream,
                advisory.stream_seq,
                advisory.consumer,
            )
            return
        letter = DeadLetter(
            consumer=advisory.consumer,
            stream=advisory.stream,
            subject=original.subject or "",
            stream_seq=advisory.stream_seq,
            deliveries=advisory.deliveries,
            reason="max_deliveries",
            error=f"not acked in {advisory.deliveries} deliveries: the process died or hung "
            "on it, or it was nak'ed outside chatbus' consumers",
            headers=dict(original.headers or {}),
            published_at=original.time,
        )
        await self.file(letter, original.data or b"")
        tracked = self._tracked.get((advisory.stream, advisory.consumer))
        if tracked is not None and tracked.spec.stream.retention == "workqueue":
            # Nobody else reads a work queue: its exhausted message would stay until max age.
            with contextlib.suppress(NotFoundError):
                await js.delete_msg(advisory.stream, advisory.stream_seq)

    def _connection(self) -> Client:
        broker = self._broker()
        if broker is None:
            raise RuntimeError("the broker of this dead-letter office is gone")
        connection: Client = broker.connection
        return connection


_offices: weakref.WeakKeyDictionary[NatsBroker, DeadLetterOffice] = weakref.WeakKeyDictionary()


def open_dead_letter_office(broker: NatsBroker, policy: RedeliveryPolicy) -> DeadLetterOffice:
    """Give `broker` its office (`create_broker` does this once per broker)."""
    office = _offices[broker] = DeadLetterOffice(broker, policy)
    return office


def dead_letter_office(broker: NatsBroker) -> DeadLetterOffice:
    """The office of a broker made by `create_broker`, e.g. to add a hook."""
    return _offices[broker]
