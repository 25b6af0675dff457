"""`in_order`: the chunks a reader relays when a request was run by more than one attempt."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

from chatbus_contracts.chunks import (
    DeltaChunk,
    ReplyChunk,
    RestartChunk,
    StoppedChunk,
)
from chatbus_gateway.replay import in_order, live_chunks
from chatbus_gateway.replies import RECONNECTED, ChunkQueue

REQUEST_ID = uuid.uuid4()


def _delta(seq: int, attempt: int = 1) -> DeltaChunk:
    return DeltaChunk(request_id=REQUEST_ID, seq=seq, attempt=attempt, text=f"{attempt}.{seq} ")


def _restart(seq: int, attempt: int) -> RestartChunk:
    return RestartChunk(request_id=REQUEST_ID, seq=seq, attempt=attempt)


def _end(seq: int, attempt: int) -> StoppedChunk:
    return StoppedChunk(request_id=REQUEST_ID, seq=seq, attempt=attempt, message_id=REQUEST_ID)


# Attempt 1 streamed five deltas and died; attempt 2 restarted at 6 and finished.
CRASHED = [
    *(_delta(seq) for seq in range(1, 6)),
    _restart(6, 2),
    *(_delta(seq, 2) for seq in range(7, 10)),
    _end(10, 2),
]


async def _relay(chunks: list[ReplyChunk], after_seq: int = 0, floor: int = 1) -> list[str]:
    async def source() -> AsyncIterator[ReplyChunk]:
        for chunk in chunks:
            yield chunk

    return [
        f"{chunk.kind} {chunk.attempt}.{chunk.seq}"
        async for chunk in in_order(source(), after_seq, floor)
    ]


ATTEMPT_2 = ["restart 2.6", "delta 2.7", "delta 2.8", "delta 2.9", "stopped 2.10"]


async def test_live_the_restart_follows_the_first_attempt() -> None:
    first = [f"delta 1.{seq}" for seq in range(1, 6)]
    assert await _relay(CRASHED) == first + ATTEMPT_2


async def test_a_replay_knowing_the_newest_attempt_drops_the_older_ones() -> None:
    assert await _relay(CRASHED, floor=2) == ATTEMPT_2
    assert await _relay(CRASHED, after_seq=3, floor=2) == ATTEMPT_2
    # Inside attempt 2 the restart comes again (a client ignores a restart it applied).
    assert await _relay(CRASHED, after_seq=7, floor=2) == ["restart 2.6", *ATTEMPT_2[2:]]
    assert await _relay(CRASHED, after_seq=10, floor=2) == ["restart 2.6", "stopped 2.10"]


async def test_a_zombie_is_dropped_once_the_newer_attempt_began() -> None:
    # Attempt 1 woke up after attempt 2 had read seq 5: both wrote a seq 6.
    chunks = [
        *(_delta(seq) for seq in range(1, 6)),
        _delta(6),
        _restart(6, 2),
        _delta(7),
        _delta(7, 2),
        _end(8, 1),
        _end(8, 2),
    ]
    assert await _relay(chunks) == [
        *(f"delta 1.{seq}" for seq in range(1, 7)),
        "restart 2.6",
        "delta 2.7",
        "stopped 2.8",
    ]


async def test_duplicates_and_early_chunks_come_once_in_order() -> None:
    chunks = [_delta(2), _delta(1), _delta(1), _delta(3), _restart(4, 2), _restart(4, 2)]
    chunks += [_delta(6, 2), _delta(5, 2), _end(7, 2)]
    assert await _relay(chunks) == [
        "delta 1.1",
        "delta 1.2",
        "delta 1.3",
        "restart 2.4",
        "delta 2.5",
        "delta 2.6",
        "stopped 2.7",
    ]


async def test_a_stalled_live_relay_carries_on_from_the_stream() -> None:
    # Chunks 3 and 4 were published while this gateway's subscription was away.
    queue: ChunkQueue = asyncio.Queue()
    for chunk in (_delta(1), _delta(2)):
        queue.put_nowait(chunk)
    stored = [_delta(1), _delta(2), _delta(3), _delta(4), _end(5, 1)]

    async def from_stream() -> AsyncIterator[ReplyChunk]:
        for chunk in stored:
            yield chunk

    relayed = [
        chunk.seq async for chunk in in_order(live_chunks(queue, from_stream, stall_seconds=0.05))
    ]
    assert relayed == [1, 2, 3, 4, 5]


async def test_a_live_relay_that_keeps_flowing_never_reads_the_stream() -> None:
    queue: ChunkQueue = asyncio.Queue()
    for chunk in (_delta(1), _end(2, 1)):
        queue.put_nowait(chunk)

    def no_stream() -> AsyncIterator[ReplyChunk]:
        raise AssertionError("the stream was read")

    relayed = [chunk.seq async for chunk in in_order(live_chunks(queue, no_stream))]
    assert relayed == [1, 2]


async def test_a_live_relay_slower_in_all_than_the_stall_bound_never_reads_the_stream() -> None:
    queue: ChunkQueue = asyncio.Queue()

    async def provider() -> None:  # a chunk every 20 ms for 0.3 s; the bound is 0.1 s
        for seq in range(1, 16):
            await asyncio.sleep(0.02)
            queue.put_nowait(_delta(seq))
        queue.put_nowait(_end(16, 1))

    def no_stream() -> AsyncIterator[ReplyChunk]:
        raise AssertionError("the stream was read")

    producing = asyncio.create_task(provider())
    relayed = [
        chunk.seq async for chunk in in_order(live_chunks(queue, no_stream, stall_seconds=0.1))
    ]
    await producing
    assert relayed == list(range(1, 17))


async def test_after_a_reconnect_the_relay_goes_on_from_the_stream_though_chunks_flow() -> None:
    # Chunk 3 was published while the subscription was away; 4 and 5 came live after it.
    queue: ChunkQueue = asyncio.Queue()
    for item in (_delta(1), _delta(2), RECONNECTED, _delta(4), _end(5, 1)):
        queue.put_nowait(item)
    stored = [_delta(1), _delta(2), _delta(3), _delta(4), _end(5, 1)]

    async def from_stream() -> AsyncIterator[ReplyChunk]:
        for chunk in stored:
            yield chunk

    # The marker alone switches: no waiting for the stall fallback.
    async with asyncio.timeout(1):
        relayed = [
            chunk.seq async for chunk in in_order(live_chunks(queue, from_stream, stall_seconds=60))
        ]
    assert relayed == [1, 2, 3, 4, 5]
