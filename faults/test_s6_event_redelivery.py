"""Scenario 6: every event is delivered three times (each republished twice more).

An outside client copies every new EVENTS message back into the stream twice, each copy
with a new `Nats-Msg-Id` (so JetStream stores it) and the same payload and `event_id`:
once at once, once 2 s later among newer events. Every durable consumer (conversation,
usage, embeddings) thus handles each event three times, out of order — what an
at-least-once bus may do after a lost ack or a producer's retry beyond the dedupe window.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from chatbus_contracts.streams import EVENTS
from nats.aio.client import Client

from .bus import EventDuplicator, last_sequence
from .load import Load
from .processes import System
from .report import Row
from .scenario import assert_nothing_lost_or_duplicated, keep_loading, run_scenario

pytestmark = pytest.mark.timeout(600)

LOAD_SECONDS = 30.0


async def test_events_delivered_three_times_are_stored_once(
    healthy: System, bus: Client, rows: list[Row]
) -> None:
    js = bus.jetstream()
    duplicator = EventDuplicator(js, await last_sequence(js, EVENTS.name))
    copying = asyncio.create_task(duplicator.run())

    async def load_on(load: Load) -> str:
        await keep_loading(LOAD_SECONDS)
        return "every EVENTS message published twice more, new Nats-Msg-Id (at once, +2 s)"

    async def all_copies_out(load: Load) -> None:
        await asyncio.sleep(5)  # titles are published after the turn's end
        async with asyncio.timeout(60):
            while duplicator.copies < 2 * duplicator.originals:  # noqa: ASYNC110
                await asyncio.sleep(0.2)

    try:
        outcome = await run_scenario(
            "6 every event 3 times", healthy, bus, rows, load_on, after_load=all_copies_out
        )
    finally:
        copying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await copying
    print(f"  {duplicator.originals} events, {duplicator.copies} copies")
    assert duplicator.originals > 0 and duplicator.copies >= 2 * duplicator.originals
    assert_nothing_lost_or_duplicated(outcome.verdict)
