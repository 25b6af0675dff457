"""Reading a request's chunks back from the CHAT_CHUNKS stream.

Used when a `chat.send` is resent: its generation is already running or done, so the
chunks so far are only in the stream. An ordered consumer (nats-py; ephemeral, no
handler, so not a FastStream subscriber) delivers them from the first, then the tail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID

from chatbus_contracts import subjects
from chatbus_contracts.chunks import REPLY_CHUNK_ADAPTER, ReplyChunk
from chatbus_contracts.streams import CHAT_CHUNKS
from faststream.nats import NatsBroker
from nats.js.api import DeliverPolicy


async def replay_chunks(broker: NatsBroker, request_id: UUID) -> AsyncIterator[ReplyChunk]:
    """Every chunk of `request_id` in stream order, then new ones as they are stored."""
    js = broker.connection.jetstream()
    subscription = await js.subscribe(
        subjects.chat_chunks_request_wildcard(request_id),
        stream=CHAT_CHUNKS.name,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    try:
        async for msg in subscription.messages:
            yield REPLY_CHUNK_ADAPTER.validate_json(msg.data)
    finally:
        await subscription.unsubscribe()


async def queued_chunks(queue: asyncio.Queue[ReplyChunk]) -> AsyncIterator[ReplyChunk]:
    """The live chunks routed to this gateway, as an iterator."""
    while True:
        yield await queue.get()
