"""Routes reply chunks from this gateway's one NATS subscription to the turns waiting for them."""

from __future__ import annotations

import asyncio
from uuid import UUID

from chatbus_contracts.chunks import ReplyChunk


class Reconnected:
    """Put in every queue when the NATS connection came back: chunks may have been missed."""


RECONNECTED = Reconnected()

ChunkQueue = asyncio.Queue[ReplyChunk | Reconnected]


class ReplyRouter:
    """Queues per open request; chunks for requests nobody waits for are dropped.

    Dropping is safe: every chunk is also kept in the CHAT_CHUNKS stream for replay.
    """

    def __init__(self) -> None:
        self._queues: dict[UUID, list[ChunkQueue]] = {}

    def open(self, request_id: UUID) -> ChunkQueue:
        """Start collecting chunks of `request_id` (before the request is published)."""
        queue: ChunkQueue = asyncio.Queue()
        self._queues.setdefault(request_id, []).append(queue)
        return queue

    def close(self, request_id: UUID, queue: ChunkQueue) -> None:
        """Stop collecting chunks of `request_id` into `queue`."""
        queues = self._queues.get(request_id)
        if queues is None:
            return
        if queue in queues:
            queues.remove(queue)
        if not queues:
            del self._queues[request_id]

    def dispatch(self, chunk: ReplyChunk) -> None:
        """Hand a chunk to every turn waiting for it."""
        for queue in self._queues.get(chunk.request_id, ()):
            queue.put_nowait(chunk)

    async def reconnected(self) -> None:
        """The subscription is back after a NATS disconnect: tell every open turn.

        Core NATS does not keep what was published while this gateway was away, so
        each relay goes on from the CHAT_CHUNKS stream instead (`replay.live_chunks`).
        """
        for queues in self._queues.values():
            for queue in queues:
                queue.put_nowait(RECONNECTED)

    @property
    def open_requests(self) -> int:
        """How many requests are being relayed right now."""
        return len(self._queues)
