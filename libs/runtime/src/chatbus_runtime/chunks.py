"""Reply chunks on the wire: publishing them, and reading back the newest one stored.

Chunks are the hot path (one per token), so they are published with the plain NATS
client: no FastStream middleware, no tracing span per chunk (the turn's span covers
them), just the JSON body. The CHAT_CHUNKS stream stores them all the same.

A core publish is not acknowledged: one written just before nats-server went away is
in neither the stream nor any reader. `ChunkSender` makes an attempt's chunks survive
that: after every reconnect of its connection it publishes the attempt's chunks again
before the next one (readers drop a `seq` they have), and the terminal chunk waits for
the stream's acknowledgement, so no turn can end with a chunk missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from chatbus_contracts.chunks import REPLY_CHUNK_ADAPTER, ReplyChunk
from chatbus_contracts.streams import CHAT_CHUNKS
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.js.api import RawStreamMsg
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from .bus import direct_gets
from .outages import is_transient, pause_delays

logger = logging.getLogger(__name__)

# How long the terminal chunk keeps trying to be stored through an outage.
TERMINAL_DEADLINE_SECONDS = 60.0
TERMINAL_ACK_SECONDS = 5.0


class ChunkSender:
    """Publishes one attempt's chunks on `subject` so that a NATS reconnect loses none."""

    def __init__(self, broker: NatsBroker, subject: str) -> None:
        self._connection: Client = broker.connection
        self._subject = subject
        self._sent: list[bytes] = []
        self._reconnects = self._connection.stats["reconnects"]

    async def send(self, chunk: ReplyChunk) -> None:
        """Publish a chunk (core NATS); first the attempt's earlier ones after a reconnect."""
        await self._catch_up()
        data = chunk.model_dump_json().encode()
        self._sent.append(data)
        await self._connection.publish(self._subject, data)

    async def send_last(self, chunk: ReplyChunk) -> None:
        """Publish the terminal chunk and wait until CHAT_CHUNKS has stored it.

        Raises the last error if it could not be stored within the deadline (the
        request is then delivered again and ends from what is stored).
        """
        data = chunk.model_dump_json().encode()
        js = self._connection.jetstream()
        deadline = time.monotonic() + TERMINAL_DEADLINE_SECONDS
        delays = pause_delays(0.1, 2.0)
        while True:
            await self._catch_up()
            reconnects = self._reconnects
            try:
                await js.publish(
                    self._subject, data, stream=CHAT_CHUNKS.name, timeout=TERMINAL_ACK_SECONDS
                )
            except Exception as error:
                delay = next(delays)
                if not is_transient(error) or time.monotonic() + delay > deadline:
                    raise
                logger.warning("terminal chunk on %s not stored yet: %r", self._subject, error)
                await asyncio.sleep(delay)
                continue
            # nats-py counts a reconnect before it flushes what was buffered: one that
            # came while the end was in flight may have lost an earlier chunk, so those
            # go again and the end after them (it must stay the last one stored).
            if self._connection.stats["reconnects"] == reconnects:
                return

    async def _catch_up(self) -> None:
        """After a reconnect, publish again every chunk sent before it (any may be lost)."""
        reconnects = self._connection.stats["reconnects"]
        if reconnects == self._reconnects:
            return
        self._reconnects = reconnects
        for data in self._sent:
            await self._connection.publish(self._subject, data)


async def last_chunk(broker: NatsBroker, subject: str) -> ReplyChunk | None:
    """The newest chunk stored on `subject`, or None if there is none.

    `subject` is a request's own chunk subject, or `chat_chunks_request_wildcard` for a
    request whichever gateway accepted it. One lookup, whatever the stream holds: a
    direct get for a request's own subject (a wildcard cannot be one) where the stream
    answers them, else through the JetStream API (also when a chatbus that predates them
    has just declared the stream without).
    """
    js = broker.connection.jetstream()
    direct = direct_gets(broker, CHAT_CHUNKS) and not any(
        token in ("*", ">") for token in subject.split(".")
    )
    try:
        stored = await _last_message(js, subject, direct=direct)
    except NotFoundError:
        return None
    return REPLY_CHUNK_ADAPTER.validate_json(stored.data or b"")


async def _last_message(js: JetStreamContext, subject: str, *, direct: bool) -> RawStreamMsg:
    if direct:
        with contextlib.suppress(NoRespondersError):  # declared without them just now
            return await js.get_last_msg(CHAT_CHUNKS.name, subject, direct=True)
    return await js.get_last_msg(CHAT_CHUNKS.name, subject)
