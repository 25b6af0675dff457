"""One NATS round trip while the processes are busy, and after they idled.

At concurrency 1 a turn waits on a few NATS round trips in a row (the gateway's
turn-record read, the request stored and delivered to inference, inference's lookups),
each to processes that idled since the previous turn. This measures one such round trip
against the stack's nats-server from the load client: a key-value read of a missing key
(what those lookups mostly are), back to back and after `IDLE_SECONDS` of sleep each.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import nats
from chatbus_contracts.streams import CHAT_TURNS
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from ..context import BenchContext
from ..stats import summarize

IDLE_SECONDS = 0.02
ROUND_TRIPS = 100


async def run(ctx: BenchContext) -> dict[str, Any]:
    """p50/p90/p99 of a read back to back and of a read after an idle pause (ms)."""
    connection = await nats.connect(ctx.endpoints.nats_url)
    try:
        kv = await connection.jetstream().key_value(CHAT_TURNS.name)
        busy = [await _timed_read(kv, n) for n in range(ROUND_TRIPS)]
        after_idle = []
        for n in range(ROUND_TRIPS):
            await asyncio.sleep(IDLE_SECONDS)
            after_idle.append(await _timed_read(kv, n))
    finally:
        await connection.close()
    return {
        "idle_seconds": IDLE_SECONDS,
        "busy_ms": summarize(busy).to_json(),
        "after_idle_ms": summarize(after_idle).to_json(),
    }


async def _timed_read(kv: KeyValue, n: int) -> float:
    started = time.perf_counter()
    with contextlib.suppress(KeyNotFoundError):
        await kv.get(f"bench-wakeup-{n}")
    return (time.perf_counter() - started) * 1000
