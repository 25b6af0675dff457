"""A request's chunks as a reader should relay them: in order, once, newest attempt only.

Live chunks come from this gateway's one subscription (`replies.ReplyRouter`). A resent
`chat.send` and a `chat.resume` read them back from the CHAT_CHUNKS stream instead: an
ordered consumer (nats-py; ephemeral, no handler, so not a FastStream subscriber)
delivers the stored ones from the first, then the tail, whichever gateway accepted
the request.

Either way `in_order` puts them right: a request delivered again to another inference
replica starts over with a `restart` chunk of a newer attempt, after which the chunks of
older attempts (a dead replica's tail, a stalled replica that woke up) are dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from uuid import UUID

from chatbus_contracts import subjects
from chatbus_contracts.chunks import REPLY_CHUNK_ADAPTER, ReplyChunk, RestartChunk, is_terminal
from chatbus_contracts.streams import CHAT_CHUNKS
from chatbus_runtime.chunks import last_chunk
from chatbus_runtime.outages import is_transient
from chatbus_runtime.overdue import Overdue
from faststream.nats import NatsBroker
from nats.js.api import DeliverPolicy

from .replies import ChunkQueue, Reconnected, ReplyRouter

# How long a reader keeps trying to open the stream (JetStream just after a restart).
SUBSCRIBE_DEADLINE_SECONDS = 30.0


async def stored_chunks(broker: NatsBroker, request_id: UUID) -> AsyncIterator[ReplyChunk]:
    """Every chunk of `request_id` in stream order, then new ones as they are stored."""
    js = broker.connection.jetstream()
    deadline = time.monotonic() + SUBSCRIBE_DEADLINE_SECONDS
    while True:
        try:
            subscription = await js.subscribe(
                subjects.chat_chunks_request_wildcard(request_id),
                stream=CHAT_CHUNKS.name,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            )
            break
        except Exception as error:
            if not is_transient(error) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)
    try:
        async for msg in subscription.messages:
            yield REPLY_CHUNK_ADAPTER.validate_json(msg.data)
    finally:
        await subscription.unsubscribe()


async def replay_chunks(
    broker: NatsBroker, request_id: UUID, *, after_seq: int = 0
) -> AsyncIterator[ReplyChunk]:
    """The stored chunks and the tail in order, skipping every attempt older than the newest.

    The newest attempt so far is that of the last stored chunk, so a reader never even
    sees the text of an attempt that was superseded before it came.
    """
    newest = await last_chunk(broker, subjects.chat_chunks_request_wildcard(request_id))
    floor = newest.attempt if newest is not None else 1
    async for chunk in in_order(stored_chunks(broker, request_id), after_seq, floor):
        yield chunk


# Live silence after which a relay also reads the stream (see `live_chunks`).
STALL_SECONDS = 5.0


async def live_chunks(
    queue: ChunkQueue,
    stored: Callable[[], AsyncIterator[ReplyChunk]],
    stall_seconds: float = STALL_SECONDS,
) -> AsyncIterator[ReplyChunk]:
    """The live chunks routed to this gateway, until they may have missed one; then the stored.

    Live delivery is core NATS: chunks published while this gateway's subscription was
    away never reach the queue. After a reconnect (the router says so), or a silence of
    `stall_seconds` (anything else), the relay switches to the CHAT_CHUNKS stream from
    the start, which also follows new chunks; `in_order` drops what was relayed already.
    A slow provider only costs that one stream read.
    """
    loop = asyncio.get_running_loop()
    with Overdue() as overdue:  # one timer for the relay, not one per chunk
        while True:
            try:
                item = await overdue.wait(queue.get(), loop.time() + stall_seconds)
            except TimeoutError:
                break
            if isinstance(item, Reconnected):
                break
            yield item
    async for chunk in stored():
        yield chunk


async def in_order(
    chunks: AsyncIterator[ReplyChunk], after_seq: int = 0, floor: int = 1
) -> AsyncIterator[ReplyChunk]:
    """Chunks after `after_seq` in `seq` order, each once, ending with the terminal one.

    Only the newest attempt counts (at least `floor`): its `restart` chunk is always
    passed on, even at or before `after_seq` (a reader cannot tell which attempt its
    position was in; one that applied it already ignores it by its `attempt`), and
    numbering goes on after it. A reader that already saw the terminal chunk gets it
    again, so every relay ends with the turn's end, stop or error.
    """
    attempt, announced = floor, 1  # newest attempt seen; newest whose restart was passed on
    next_seq = after_seq + 1
    early: dict[int, ReplyChunk] = {}
    async for chunk in chunks:
        if chunk.attempt < attempt:
            continue  # superseded
        if chunk.attempt > attempt:
            attempt = chunk.attempt
            early = {seq: held for seq, held in early.items() if held.attempt == attempt}
        if isinstance(chunk, RestartChunk):
            if chunk.attempt <= announced:
                continue  # a repeat
            announced = chunk.attempt
            next_seq = max(next_seq, chunk.seq + 1)
            yield chunk
        elif chunk.seq >= next_seq:
            early[chunk.seq] = chunk
        elif is_terminal(chunk) and chunk.attempt == announced:
            yield chunk  # seen already: the end comes again
            return
        # An attempt's chunks wait for its restart (it is published first, so this
        # only matters if a reader sees them out of order).
        while attempt == announced and next_seq in early:
            ready = early.pop(next_seq)
            yield ready
            next_seq += 1
            if is_terminal(ready):
                return


def turn_chunks(
    broker: NatsBroker,
    router: ReplyRouter,
    request_id: UUID,
    queue: ChunkQueue,
    *,
    duplicate: bool,
) -> AsyncIterator[ReplyChunk]:
    """A just-accepted turn's chunks in order: live from `queue`, or replayed for a resend.

    `queue` is closed as soon as nothing reads it any more (a resend, or the switch to
    the stream), so the router stops filling it.
    """
    if duplicate:
        router.close(request_id, queue)
        return replay_chunks(broker, request_id)

    def from_stream() -> AsyncIterator[ReplyChunk]:
        router.close(request_id, queue)
        return stored_chunks(broker, request_id)

    return in_order(live_chunks(queue, from_stream))
