"""The frame of every scenario: load, fault, recovery, settle, verdict, row, assertion."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chatbus_contracts.streams import EVENTS
from nats.aio.client import Client

from .bus import last_sequence
from .checks import Verdict, judge, settle
from .load import Load, LoadOptions
from .processes import System
from .report import Row, table

Fault = Callable[[Load], Awaitable[str]]


@dataclass
class Outcome:
    """A finished scenario: its load (every turn as the clients saw it) and verdict."""

    load: Load
    verdict: Verdict
    fault: str


async def run_scenario(
    name: str,
    system: System,
    bus: Client,
    rows: list[Row],
    fault: Fault,
    options: LoadOptions | None = None,
    after_load: Callable[[Load], Awaitable[None]] | None = None,
    judge_more: Callable[[Load, Verdict], Awaitable[None]] | None = None,
) -> Outcome:
    """Start the load, wait until it flows, inject `fault`, stop the load, judge.

    `fault` returns a line saying what it did; `after_load` runs once every turn ended,
    before the stores are judged; `judge_more` adds the scenario's own findings.
    """
    js = bus.jetstream()
    events_after = await last_sequence(js, EVENTS.name)
    started = time.monotonic()
    load = Load(system, js, name, options or LoadOptions())
    load.start()
    try:
        await load.until_ended(load.options.clients)  # every part has warmed up
        what = await fault(load)
    except BaseException:
        await load.cancel()
        raise
    await load.stop()
    if after_load is not None:
        await after_load(load)
    stored = await settle(system, js, load.turns, events_after)
    await load.replay_all()
    verdict = judge(load.turns, stored)
    if judge_more is not None:
        await judge_more(load, verdict)
    row = Row(name, verdict, time.monotonic() - started, what)
    rows.append(row)
    print("\n" + "\n".join(table([row])))
    for problem in [*verdict.problems, *verdict.stalled, *verdict.unreplayable][:40]:
        print(f"  {problem}")
    return Outcome(load, verdict, what)


def assert_nothing_lost_or_duplicated(verdict: Verdict) -> None:
    """The suite's promise: lost, duplicated and mismatched are 0, nothing else is wrong."""
    details = "\n".join(verdict.problems[:40])
    assert verdict.accepted > 0, "no turn was accepted"
    assert (verdict.lost, verdict.duplicated, verdict.mismatched) == (0, 0, 0), details
    assert not verdict.problems, details
    lapses = [*verdict.stalled, *verdict.unreplayable]
    assert not lapses, "\n".join(lapses[:40])


async def keep_loading(seconds: float) -> None:
    """Let the load run on (recovery under load)."""
    await asyncio.sleep(seconds)
