"""Wait until the stack has caught up, so one phase's backlog does not slow the next.

Caught up means the durable consumers of the turn path have nothing pending and
nothing unacknowledged: inference (CHAT_REQUESTS), conversation and usage (EVENTS).
How long that took is reported: a long settle says the previous phase left work behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import nats
from chatbus_contracts.streams import (
    CONVERSATION_CONSUMER,
    INFERENCE_CONSUMER,
    USAGE_CONSUMER,
    ConsumerSpec,
)
from nats.aio.client import Client
from nats.errors import Error as NatsError

TURN_PATH: tuple[ConsumerSpec, ...] = (INFERENCE_CONSUMER, CONVERSATION_CONSUMER, USAGE_CONSUMER)
POLL_SECONDS = 0.1


class Settler:
    """One NATS connection, polling consumer info."""

    def __init__(self, connection: Client) -> None:
        """Use `Settler.connect`."""
        self._connection = connection

    @classmethod
    async def connect(cls, nats_url: str) -> Settler:
        """Connect to the stack's NATS server."""
        return cls(await nats.connect(nats_url, name="chatbus-bench"))

    async def backlog(self) -> int:
        """Messages pending or awaiting an ack, summed over the turn path's consumers."""
        js = self._connection.jetstream()
        total = 0
        for spec in TURN_PATH:
            try:
                info = await js.consumer_info(spec.stream.name, spec.durable)
            except NatsError:
                continue  # not declared yet: nothing of it to wait for
            total += (info.num_pending or 0) + (info.num_ack_pending or 0)
        return total

    async def settle(self, max_seconds: float) -> float:
        """Wait for two empty readings in a row (or `max_seconds`); seconds waited.

        Two, because a consumer acking its last event may have just caused another (a
        title update follows a conversation's first answer).
        """
        started = time.monotonic()
        empty = 0
        while empty < 2 and time.monotonic() - started < max_seconds:
            empty = empty + 1 if await self.backlog() == 0 else 0
            await asyncio.sleep(POLL_SECONDS)
        return round(time.monotonic() - started, 2)

    async def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(NatsError):
            await self._connection.close()
