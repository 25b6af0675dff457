"""Reading back the CHAT_CHUNKS stream: the newest chunk stored for a request."""

from __future__ import annotations

from chatbus_contracts.chunks import REPLY_CHUNK_ADAPTER, ReplyChunk
from chatbus_contracts.streams import CHAT_CHUNKS
from faststream.nats import NatsBroker
from nats.js.errors import NotFoundError


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
