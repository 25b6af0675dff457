"""Reply chunks on the wire: publishing them, and reading back the newest one stored.

Chunks are the hot path (one per token), so they are published with the plain NATS
client: no FastStream middleware, no tracing span per chunk (the turn's span covers
them), just the JSON body. The CHAT_CHUNKS stream stores them all the same.
"""

from __future__ import annotations

from chatbus_contracts.chunks import REPLY_CHUNK_ADAPTER, ReplyChunk
from chatbus_contracts.streams import CHAT_CHUNKS
from faststream.nats import NatsBroker
from nats.js.errors import NotFoundError


async def publish_chunk(broker: NatsBroker, chunk: ReplyChunk, subject: str) -> None:
    """Publish one chunk on its request's subject (core NATS, captured by CHAT_CHUNKS)."""
    await broker.connection.publish(subject, chunk.model_dump_json().encode())


async def last_chunk(broker: NatsBroker, subject: str) -> ReplyChunk | None:
    """The newest chunk stored on `subject`, or None if there is none.

    `subject` is a request's own chunk subject, or `chat_chunks_request_wildcard` for a
    request whichever gateway accepted it. One direct lookup, whatever the stream holds.
    """
    js = broker.connection.jetstream()
    try:
        stored = await js.get_last_msg(CHAT_CHUNKS.name, subject)
    except NotFoundError:
        return None
    return REPLY_CHUNK_ADAPTER.validate_json(stored.data or b"")
