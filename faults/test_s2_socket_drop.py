"""Scenario 2: every turn's socket drops mid-stream; the client resumes on the other gateway."""

from __future__ import annotations

import pytest
from nats.aio.client import Client

from .load import Load, LoadOptions
from .processes import System
from .report import Row
from .scenario import assert_nothing_lost_or_duplicated, keep_loading, run_scenario

pytestmark = pytest.mark.timeout(600)

LOAD_SECONDS = 40.0


async def test_dropped_sockets_resume_on_the_other_gateway(
    healthy: System, bus: Client, rows: list[Row]
) -> None:
    async def drop_every_turn(load: Load) -> str:
        await keep_loading(LOAD_SECONDS)
        return "every turn's socket dropped after 1-4 deltas (no close frame), resumed elsewhere"

    outcome = await run_scenario(
        "2 socket drop + resume",
        healthy,
        bus,
        rows,
        drop_every_turn,
        LoadOptions(drop_sockets=True),
    )
    assert_nothing_lost_or_duplicated(outcome.verdict)
    accepted = [turn for turn in outcome.load.turns if turn.accepted is not None]
    # Every turn was cut once, and read to its end over a resume on the other gateway.
    assert all(turn.drops == 1 and turn.resumes >= 1 for turn in accepted)
