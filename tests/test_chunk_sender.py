"""A turn's chunks survive nats-server dying under them (runtime `ChunkSender`).

Core NATS publishes are not acknowledged: bytes the client wrote to a server that then
died are gone. The test makes that happen for sure: nats-server is frozen (SIGSTOP),
chunks are written into its socket, then it is killed (SIGKILL) and started again on
its store. Everything the sender published must be in CHAT_CHUNKS afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator

import pytest
from chatbus_cli.embedded import EmbeddedNats
from chatbus_contracts import subjects
from chatbus_contracts.chunks import REPLY_CHUNK_ADAPTER, DeltaChunk, EndChunk, ReplyChunk
from chatbus_contracts.common import TokenUsage
from chatbus_contracts.streams import CHAT_CHUNKS
from chatbus_runtime.bus import declare_streams
from chatbus_runtime.chunks import ChunkSender
from faststream.nats import NatsBroker

from .eventbus import broker_at

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REQUEST_ID = uuid.uuid4()
SUBJECT = subjects.chat_chunks_subject("g1", REQUEST_ID)


@pytest.fixture
async def broker(own_nats: EmbeddedNats) -> AsyncIterator[NatsBroker]:
    async with broker_at(own_nats.url) as broker:
        await declare_streams(broker, (CHAT_CHUNKS,))
        yield broker


def _delta(seq: int) -> DeltaChunk:
    return DeltaChunk(request_id=REQUEST_ID, seq=seq, text=f"part {seq} ")


def _end(seq: int) -> EndChunk:
    return EndChunk(
        request_id=REQUEST_ID,
        seq=seq,
        message_id=REQUEST_ID,
        finish_reason="stop",
        usage=TokenUsage(prompt_tokens=1, completion_tokens=seq),
        cost_usd=None,
        model="demo",
        provider="demo",
        latency_ms=1,
    )


async def _stored(broker: NatsBroker) -> list[ReplyChunk]:
    js = broker.connection.jetstream()
    info = await js.stream_info(CHAT_CHUNKS.name)
    chunks = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        stored = await js.get_msg(CHAT_CHUNKS.name, seq)
        chunks.append(REPLY_CHUNK_ADAPTER.validate_json(stored.data or b""))
    return chunks


async def test_chunks_written_to_a_server_that_died_are_stored_after_the_reconnect(
    own_nats: EmbeddedNats, broker: NatsBroker
) -> None:
    sender = ChunkSender(broker, SUBJECT)
    await sender.send(_delta(1))
    await broker.connection.flush()  # chunk 1 is in the stream
    pid = own_nats.pid
    assert pid is not None

    os.kill(pid, signal.SIGSTOP)
    await sender.send(_delta(2))  # into the frozen server's socket
    ending = asyncio.create_task(sender.send_last(_end(3)))
    await asyncio.sleep(0.5)  # the client has written both
    await asyncio.to_thread(own_nats.kill)  # SIGKILL, and reaped
    await asyncio.to_thread(own_nats.start)

    await asyncio.wait_for(ending, 60)  # stored, though its first publish was lost

    stored = await _stored(broker)
    assert {chunk.seq for chunk in stored} == {1, 2, 3}
    assert stored[-1].seq == 3  # the terminal chunk is the last one stored
