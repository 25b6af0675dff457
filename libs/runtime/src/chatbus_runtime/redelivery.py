"""Failed JetStream messages come back later, not at once, and not forever.

FastStream's `NACK_ON_ERROR` naks without a delay, so a failing handler would be
redelivered in a tight loop. This middleware settles a failed message first: a nak
with an exponential delay by delivery count, or, on the consumer's last delivery, a
move to DEAD_LETTERS (`chatbus_runtime.deadletters`). FastStream's own nack then
finds the message already settled and does nothing more.

A failure because Postgres or NATS cannot be reached is no reason to give up on the
message: a `NACK_ON_ERROR` subscriber holds it and pauses until they answer
(`chatbus_runtime.outages`); only a failure of another kind gets here.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatbus_contracts.streams import ConsumerSpec
from faststream import BaseMiddleware
from faststream.context import ContextRepo
from faststream.exceptions import HandlerException
from faststream.message import StreamMessage
from nats.aio.msg import Msg

from .outages import Outages, hold_through_outage, holdable_messages, is_transient
from .settings import ServiceSettings

if TYPE_CHECKING:
    from .deadletters import DeadLetterOffice

FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 30.0


def redelivery_delay(
    num_delivered: int,
    first_delay_seconds: float = FIRST_DELAY_SECONDS,
    max_delay_seconds: float = MAX_DELAY_SECONDS,
) -> float:
    """0.5 s after the first failure, doubling up to 30 s (or the given bounds)."""
    delay = first_delay_seconds * 2 ** max(num_delivered - 1, 0)
    return float(min(delay, max_delay_seconds))


@dataclass(frozen=True)
class RedeliveryPolicy:
    """How long a failed message waits, and how often it may come back (`ServiceSettings`)."""

    first_delay_seconds: float = FIRST_DELAY_SECONDS
    max_delay_seconds: float = MAX_DELAY_SECONDS
    max_deliver: int | None = None  # None: each consumer's own `ConsumerSpec.max_deliver`

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> RedeliveryPolicy:
        """The policy the service's settings ask for."""
        return cls(
            first_delay_seconds=settings.redelivery_first_delay_seconds,
            max_delay_seconds=settings.redelivery_max_delay_seconds,
            max_deliver=settings.max_deliver,
        )

    def delay(self, num_delivered: int) -> float:
        """The wait before delivery `num_delivered + 1`."""
        return redelivery_delay(num_delivered, self.first_delay_seconds, self.max_delay_seconds)

    def max_deliver_of(self, spec: ConsumerSpec) -> int:
        """The delivery limit `spec` is declared with (≤ 0: none)."""
        return spec.max_deliver if self.max_deliver is None else self.max_deliver


class NakWithBackoff(BaseMiddleware):
    """Broker middleware: on a handler error, settle each JetStream message (later or dead).

    An error that says Postgres or NATS cannot be reached does not spend the delivery:
    the message is held and the handler run again once they answer
    (`chatbus_runtime.outages`). Built per message by FastStream with
    `functools.partial(NakWithBackoff, office=...)`.
    """

    def __init__(self, msg: Any, /, *, context: ContextRepo, office: DeadLetterOffice) -> None:
        super().__init__(msg, context=context)
        self._office = office

    async def consume_scope(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        """Run the handler; on an exception schedule redelivery or dead-letter, then re-raise."""
        try:
            return await self._run(call_next, msg)
        except HandlerException:
            raise  # ack, nack or reject asked for: FastStream settles the message
        except Exception as error:
            raw = msg.raw_message
            for item in raw if isinstance(raw, list) else [raw]:
                if isinstance(item, Msg):
                    await self._office.settle_failure(item, error)
            raise

    async def _run(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        """The handler's result, held through an outage if its subscriber may pause."""
        try:
            return await call_next(msg)
        except Exception as error:
            subscriber = self.context.get("handler_")
            held = holdable_messages(msg, subscriber)
            if not held or not is_transient(error):
                raise
            return await hold_through_outage(
                call_next,
                msg,
                error,
                held=held,
                subscriber=subscriber,
                outages=outages_of(self._office),
            )


_outages: weakref.WeakKeyDictionary[object, Outages] = weakref.WeakKeyDictionary()


def outages_of(office: DeadLetterOffice) -> Outages:
    """The paused consumers of the broker `office` serves."""
    outages = _outages.get(office)
    if outages is None:
        outages = _outages[office] = Outages()
    return outages
