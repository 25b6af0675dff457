"""Failed JetStream messages come back later, not at once, and not forever.

A message whose handler failed is nak'ed with an exponential delay by delivery count,
or, on the consumer's last delivery, moved to DEAD_LETTERS
(`DeadLetterOffice.settle_failure`, called by `chatbus_runtime.consumers`). A nak
without a delay would bring a failing message straight back, in a tight loop.

A failure because Postgres or NATS cannot be reached is no reason to give up on the
message: its consumer holds it and pauses until they answer (`chatbus_runtime.outages`);
only a failure of another kind gets here.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbus_contracts.streams import ConsumerSpec

from .outages import Outages
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


_outages: weakref.WeakKeyDictionary[object, Outages] = weakref.WeakKeyDictionary()


def outages_of(office: DeadLetterOffice) -> Outages:
    """The paused consumers of the broker `office` serves."""
    outages = _outages.get(office)
    if outages is None:
        outages = _outages[office] = Outages()
    return outages
