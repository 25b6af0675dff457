"""Failed JetStream messages come back later, not at once.

FastStream's `NACK_ON_ERROR` naks without a delay, so a handler that fails while
Postgres is down would be redelivered in a tight loop. This middleware naks first,
with an exponential delay by delivery count; FastStream's own nack then finds the
message already settled and does nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import BaseMiddleware
from faststream.message import StreamMessage
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

logger = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 30.0


def redelivery_delay(num_delivered: int) -> float:
    """0.5 s after the first failure, doubling up to 30 s."""
    return float(min(FIRST_DELAY_SECONDS * 2 ** max(num_delivered - 1, 0), MAX_DELAY_SECONDS))


async def _nak_later(raw: Msg) -> None:
    try:
        delivered = raw.metadata.num_delivered or 1
    except (NatsError, ValueError, AttributeError):
        return  # a core NATS message: nothing to redeliver
    if not raw._ackd:
        await raw.nak(delay=redelivery_delay(delivered))


class NakWithBackoff(BaseMiddleware):
    """Broker middleware: on a handler error, nak each JetStream message with a delay."""

    async def consume_scope(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        """Run the handler; on an exception schedule redelivery, then re-raise."""
        try:
            return await call_next(msg)
        except Exception:
            raw = msg.raw_message
            for item in raw if isinstance(raw, list) else [raw]:
                if isinstance(item, Msg):
                    await _nak_later(item)
            raise
