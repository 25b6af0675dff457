"""Scenario 3: the conversation service is stopped for 30 s under load, then started again.

While it is gone, gateways cannot check follow-ups' conversations (`unavailable`, the
client sends again), inference cannot read history (the request is redelivered with
backoff), and `message.created` waits in the EVENTS stream for its durable consumer.
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

OUTAGE_SECONDS = 30.0


async def test_a_conversation_outage_loses_and_duplicates_nothing(
    healthy: System, bus: Client, rows: list[Row]
) -> None:
    system = healthy

    async def stop_conversation(load: Load) -> str:
        stopped = time.monotonic()
        code = await system.stop("conversation")
        await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - stopped))
        await system.start_service("conversation")
        down = time.monotonic() - stopped
        await keep_loading(10)
        return f"conversation stopped (SIGTERM, exit {code}), started again after {down:.0f} s"

    outcome = await run_scenario("3 conversation down 30 s", system, bus, rows, stop_conversation)
    assert_nothing_lost_or_duplicated(outcome.verdict)
