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
from chatbus_contracts.chunks import REPLY_CHUNK_ADAPTER, DeltaChunk, ReplyChunk
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


async def in_order(
    chunks: AsyncIterator[ReplyChunk], *, after_seq: int = 0
) -> AsyncIterator[ReplyChunk]:
    """Chunks after `after_seq` in `seq` order, each once, ending with the terminal one.

    A reader that already saw the terminal chunk gets it again, so every relay ends
    with the turn's end, stop or error.
    """
    next_seq = after_seq + 1
    early: dict[int, ReplyChunk] = {}
    async for chunk in chunks:
        if chunk.seq < next_seq:
            if not isinstance(chunk, DeltaChunk):
                yield chunk
                return
            continue  # seen already, or a duplicate
        early[chunk.seq] = chunk
        while next_seq in early:
            ready = early.pop(next_seq)
            yield ready
            next_seq += 1
            if not isinstance(ready, DeltaChunk):
                return


def turn_chunks(
    broker: NatsBroker, request_id: UUID, queue: asyncio.Queue[ReplyChunk], *, duplicate: bool
) -> AsyncIterator[ReplyChunk]:
    """A just-accepted turn's chunks in order: live from `queue`, or replayed for a resend."""
    source = replay_chunks(broker, request_id) if duplicate else queued_chunks(queue)
    return in_order(source)
