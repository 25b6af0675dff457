"""Scenario 7: every `chat.send` is sent three times: once, again at once, again later.

The second copy goes at once to the other gateway, inside JetStream's dedupe window; the
third after the window has passed, when only the `chat_turns` record can tell the turn
was accepted already. Every copy must get the same `chat.accepted` and the whole answer,
and the provider must have been asked once per turn.

The window is the setting CHATBUS_REQUESTS_DUPLICATE_WINDOW_SECONDS (2 minutes). So
that the other scenarios keep it, this one shortens it on the running stream through the
JetStream API, as a service start with the setting would, and puts it back after.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from nats.aio.client import Client

from .bus import dedupe_window, set_dedupe_window
from .checks import Verdict
from .load import Load, LoadOptions
from .processes import System
from .report import Row
from .scenario import assert_nothing_lost_or_duplicated, keep_loading, run_scenario

pytestmark = pytest.mark.timeout(600)

LOAD_SECONDS = 30.0
WINDOW_SECONDS = 2.0


async def test_resent_chat_sends_start_no_second_turn(
    healthy: System, bus: Client, rows: list[Row]
) -> None:
    system, js = healthy, bus.jetstream()

    async def load_on(load: Load) -> str:
        await keep_loading(LOAD_SECONDS)
        return (
            "every chat.send sent again at once to the other gateway, and again after the "
            f"dedupe window (shortened to {WINDOW_SECONDS:.0f} s) had passed"
        )

    async def resend_late(load: Load) -> None:
        await asyncio.sleep(WINDOW_SECONDS + 1)
        await asyncio.gather(*(client.resend_all() for client in load.clients))

    async def one_generation_each(load: Load, verdict: Verdict) -> None:
        asked: Counter[str] = Counter()
        for slot in system.emulators:
            for request in await system.emulator_requests(slot):
                asked[request["body"]["messages"][-1]["content"]] += 1
        for turn in load.turns:
            if turn.accepted is not None and asked[turn.content] != 1:
                verdict.duplicated += 1
                verdict.problems.append(
                    f"turn {turn.send_id}: the provider was asked {asked[turn.content]} times"
                )

    original = await dedupe_window(js)
    await set_dedupe_window(js, WINDOW_SECONDS)
    try:
        outcome = await run_scenario(
            "7 every chat.send 3 times",
            system,
            bus,
            rows,
            load_on,
            LoadOptions(resend_at_once=True),
            after_load=resend_late,
            judge_more=one_generation_each,
        )
    finally:
        await set_dedupe_window(js, original)
    assert_nothing_lost_or_duplicated(outcome.verdict)
    accepted = [turn for turn in outcome.load.turns if turn.accepted is not None]
    assert all(len(turn.copies) == 2 for turn in accepted), "a resend got no answer"
