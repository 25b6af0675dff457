"""Routes reply chunks from this gateway's one NATS subscription to the turns waiting for them."""

from __future__ import annotations

import asyncio
from uuid import UUID

from chatbus_contracts.chunks import ReplyChunk

ChunkQueue = asyncio.Queue[ReplyChunk]


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

    @property
    def open_requests(self) -> int:
        """How many requests are being relayed right now."""
        return len(self._queues)
