"""Scenario 4: nats-server restarts under load (same JetStream store directory, same port).

Every service's connection drops and comes back; streams, consumers and key-value
buckets are recovered from disk. Sends during the gap are refused (`unavailable`, the
client sends again). Chunks around the restart that missed the stream are published
again by inference after its reconnect (runtime `ChunkSender`); relays that missed them
live go on from the stream after the gateway's reconnect (`replay.live_chunks`).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.aio.client import Client

from .load import Load
from .processes import System
from .report import Row
from .scenario import assert_nothing_lost_or_duplicated, keep_loading, run_scenario

pytestmark = pytest.mark.timeout(600)

DOWN_SECONDS = 3.0


async def test_a_nats_restart_loses_and_duplicates_nothing(
    healthy: System, bus: Client, rows: list[Row]
) -> None:
    system = healthy

    async def restart_nats(load: Load) -> str:
        await system.live_stream(within_seconds=60)  # chunks are flowing
        stopped = time.monotonic()
        await asyncio.to_thread(system.nats.stop)
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(system.nats.start)
        down = time.monotonic() - stopped
        await keep_loading(20)
        return f"nats-server stopped (SIGTERM) and started again on its store after {down:.1f} s"

    outcome = await run_scenario("4 nats-server restart", system, bus, rows, restart_nats)
    assert_nothing_lost_or_duplicated(outcome.verdict)
