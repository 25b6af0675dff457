"""Scenario 1: `kill -9` an inference replica mid-stream, 20 times; restart it each time.

Each replica has its own emulator, so the suite waits until the victim is streaming an
answer (a pending provider request with tokens sent), kills it, and sees the emulator
note the dropped connection. A stream can end between the look and the kill; such a
kill cuts nothing and another follows, until 20 have landed mid-stream. The other replica takes the
request over after the consumer's ack wait and starts the answer over (`chat.restart`).
Between two kills some turn must end (or 20 s pass): killed every few seconds, every
turn would be dead-lettered after `max_deliver` deliveries (allowed, but it would test
little else).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from nats.aio.client import Client

from .load import Load
from .processes import REPLICAS, System
from .report import Row
from .scenario import assert_nothing_lost_or_duplicated, run_scenario

pytestmark = pytest.mark.timeout(900)

KILLS = 20
SPARE_KILLS = 5


async def _progress(load: Load, since: int, within_seconds: float = 20.0) -> None:
    """Let some turn end between two kills (most would be dead-lettered otherwise)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within_seconds):
            while load.ended() <= since:  # noqa: ASYNC110 (clients keep no event)
                await asyncio.sleep(0.2)


async def test_killed_replicas_lose_and_duplicate_nothing(
    healthy: System, bus: Client, rows: list[Row]
) -> None:
    system = healthy
    cut = 0

    async def kill_replicas(load: Load) -> str:
        nonlocal cut
        ended = load.ended()
        kills = 0
        # A stream seen live can end between the look and the kill: that kill cut
        # nothing, so another one follows (a few spare).
        while cut < KILLS and kills < KILLS + SPARE_KILLS:
            victim = REPLICAS[kills % len(REPLICAS)]
            slot = victim.rsplit("-", 1)[1]
            _, stream = await system.live_stream((slot,), within_seconds=90)
            await system.kill(victim)
            kills += 1
            cut += await system.stream_cut(slot, stream["id"])
            await system.start_service(victim)  # both replicas run before the next kill
            await _progress(load, since=ended)
            ended = load.ended()
        return f"{kills} x kill -9 of an inference replica; {cut} cut a live provider stream"

    outcome = await run_scenario("1 kill -9 inference", system, bus, rows, kill_replicas)
    assert_nothing_lost_or_duplicated(outcome.verdict)
    assert cut == KILLS
    # Each cut stream's turn started over on the other replica, in front of its client.
    assert outcome.verdict.restarts >= KILLS - outcome.verdict.failed
