"""What the suite reads from, and does to, NATS JetStream directly (as an outside client)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import nats
from chatbus_contracts import subjects
from chatbus_contracts.streams import (
    CHAT_CHUNKS,
    CHAT_REQUESTS,
    CONVERSATION_CONSUMER,
    EMBEDDINGS_CONSUMER,
    EVENTS,
    INFERENCE_CONSUMER,
    USAGE_CONSUMER,
)
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

logger = logging.getLogger(__name__)

# The durable consumers whose backlog must be empty before the stores are checked.
SETTLING = (INFERENCE_CONSUMER, CONVERSATION_CONSUMER, USAGE_CONSUMER, EMBEDDINGS_CONSUMER)
# Set on the copies the duplicator publishes, so it never copies a copy.
COPY_HEADER = "Chatbus-Fault-Copy"


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[Client]:
    """A plain nats-py connection that rides out a server restart."""

    async def quietly(error: Exception) -> None:
        # A server restart is what some scenarios do: no tracebacks for it.
        logger.debug("nats: %r", error)

    client = await nats.connect(
        url, max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=quietly
    )
    try:
        yield client
    finally:
        await client.close()


async def last_sequence(js: JetStreamContext, stream: str) -> int:
    """The newest sequence in `stream` (0 if empty)."""
    info = await js.stream_info(stream)
    return int(info.state.last_seq)


async def read_stream(
    js: JetStreamContext, stream: str, subject: str, after_seq: int
) -> list[api.RawStreamMsg]:
    """Every message on `subject` stored in `stream` after `after_seq`, oldest first.

    Read one by one by sequence (`next_by_subj`): nats-py's ordered push consumer
    stalled in this suite when its connection also published.
    """
    found: list[api.RawStreamMsg] = []
    seq = after_seq + 1
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append(msg)
        seq = int(msg.seq or seq) + 1


async def backlog(js: JetStreamContext) -> dict[str, int]:
    """Messages each durable consumer has not acknowledged yet (pending + in flight)."""
    left = {}
    for spec in SETTLING:
        info = await js.consumer_info(spec.stream.name, spec.durable)
        left[spec.durable] = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    return left


async def set_dedupe_window(js: JetStreamContext, seconds: float) -> None:
    """Change CHAT_REQUESTS' duplicate window (every service start sets it back)."""
    info = await js.stream_info(CHAT_REQUESTS.name)
    config = info.config
    config.duplicate_window = seconds
    await js.update_stream(config)


async def dedupe_window(js: JetStreamContext) -> float:
    """CHAT_REQUESTS' duplicate window in seconds."""
    info = await js.stream_info(CHAT_REQUESTS.name)
    return float(info.config.duplicate_window or 0)


@dataclass
class EventDuplicator:
    """Publishes every new EVENTS message twice more, each copy with a new `Nats-Msg-Id`.

    JetStream stores the copies as new messages, so every durable consumer of EVENTS is
    handed each event three times: the first copy at once, the second `late_seconds`
    later, among newer events. That is what an at-least-once bus may do (a producer's
    retry after the dedupe window, a redelivery after a lost ack), with the same
    `event_id` in the payload each time.
    """

    js: JetStreamContext
    after_seq: int
    late_seconds: float = 2.0
    originals: int = 0
    copies: int = 0

    async def run(self) -> None:
        """Copy until cancelled, walking the stream by sequence."""
        late: set[asyncio.Task[None]] = set()
        seq = self.after_seq + 1
        try:
            while True:
                if seq > await last_sequence(self.js, EVENTS.name):
                    await asyncio.sleep(0.05)
                    continue
                with contextlib.suppress(NotFoundError):  # a gap: nothing to copy
                    await self._copy(await self.js.get_msg(EVENTS.name, seq), late)
                seq += 1
        finally:
            for task in late:
                task.cancel()

    async def _copy(self, msg: api.RawStreamMsg, late: set[asyncio.Task[None]]) -> None:
        headers = dict(msg.headers or {})
        if COPY_HEADER in headers:
            return
        self.originals += 1
        await self._publish_copy(msg, headers, 1)
        task = asyncio.create_task(self._later(msg, headers))
        late.add(task)
        task.add_done_callback(late.discard)

    async def _later(self, msg: api.RawStreamMsg, headers: dict[str, str]) -> None:
        await asyncio.sleep(self.late_seconds)
        await self._publish_copy(msg, headers, 2)

    async def _publish_copy(
        self, msg: api.RawStreamMsg, headers: dict[str, str], number: int
    ) -> None:
        original_id = headers.get("Nats-Msg-Id", str(msg.seq))
        copy: dict[str, Any] = {
            **headers,
            "Nats-Msg-Id": f"{original_id}:copy{number}",
            COPY_HEADER: str(number),
        }
        assert msg.subject is not None
        await self.js.publish(msg.subject, msg.data or b"", stream=EVENTS.name, headers=copy)
        self.copies += 1


@dataclass(frozen=True)
class StoredChunk:
    """Where the newest chunk CHAT_CHUNKS holds for a request is."""

    seq: int
    attempt: int
    kind: str

    def ahead_of(self, seq: int, attempt: int) -> bool:
        """Whether a reader at (`seq`, `attempt`) has not seen this chunk yet."""
        return self.attempt > attempt or (self.attempt == attempt and self.seq > seq)


async def newest_chunk(js: JetStreamContext, request_id: str) -> StoredChunk | None:
    """The newest chunk stored for `request_id`, whichever gateway it was sent to."""
    try:
        subject = subjects.chat_chunks_request_wildcard(uuid.UUID(request_id))
        msg = await js.get_last_msg(CHAT_CHUNKS.name, subject)
    except NotFoundError:
        return None
    chunk = json.loads(msg.data or b"{}")
    return StoredChunk(int(chunk["seq"]), int(chunk.get("attempt", 1)), str(chunk["kind"]))
