"""Scenario 5: Postgres is stopped for 15 s under load, then started on the same data dir.

Event consumers fail and their messages are redelivered with backoff; history queries
fail and inference redelivers the request; the pools reconnect (`pool_pre_ping`).
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

OUTAGE_SECONDS = 15.0


async def test_a_postgres_outage_loses_and_duplicates_nothing(
    healthy: System, bus: Client, rows: list[Row]
) -> None:
    system = healthy

    async def stop_postgres(load: Load) -> str:
        stopped = time.monotonic()
        await asyncio.to_thread(system.postgres.stop)
        await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - stopped))
        await asyncio.to_thread(system.postgres.start)
        down = time.monotonic() - stopped
        await keep_loading(10)
        return f"postgres stopped (fast shutdown) and started again after {down:.0f} s"

    outcome = await run_scenario("5 postgres down 15 s", system, bus, rows, stop_postgres)
    assert_nothing_lost_or_duplicated(outcome.verdict)
