"""Warm both arms up, then check TCP_NODELAY on every connection of a live turn's path.

A few turns per arm first (not measured) open every connection a turn uses. Then one
slow turn per arm runs while `nodelay.probe` inspects every established connection
from both ends: client -> gateway, the services -> NATS and -> Postgres, inference ->
emulator, the SDK -> emulator. A second probe after the turns end shows which upstream
connections are kept alive between turns.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ..context import QUESTION, BenchContext
from ..nodelay import Hop, probe
from ..upstream import Reply
from ..websocket import ChatbusArm

WARMUP_REPLY = Reply(8, 0.0, 2.0)
PROBED_REPLY = Reply(20, 0.0, 20.0)
PROBE_AFTER_SECONDS = 0.2


def _hops(ctx: BenchContext) -> list[Hop]:
    return probe({**ctx.stack.pids(), "bench": os.getpid()}, ctx.endpoints.port_roles())


async def run(ctx: BenchContext, turns: int = 3) -> dict[str, Any]:
    """Warm-up turns, the TCP_NODELAY survey during a turn, and the keep-alive check after."""
    time_limit = ctx.options.turn_timeout_seconds
    (user,) = ctx.new_users(1, "warmup")
    arm = ChatbusArm(ctx.endpoints.ws_url, ctx.stack.token(user))
    failures: list[str] = []
    try:
        await ctx.set_reply(WARMUP_REPLY)
        for _ in range(turns):
            for sample in (
                await ctx.direct.turn(QUESTION, WARMUP_REPLY.expected, time_limit),
                await arm.turn(QUESTION, WARMUP_REPLY.expected, time_limit),
            ):
                if not sample.ok:
                    failures.append(f"{sample.arm}: {sample.error}")
        await ctx.set_reply(PROBED_REPLY)
        both = asyncio.gather(
            ctx.direct.turn(QUESTION, PROBED_REPLY.expected, time_limit),
            arm.turn(QUESTION, PROBED_REPLY.expected, time_limit),
        )
        # The chatbus turn reaches the emulator a few ms after the direct one; the reply
        # lasts 380 ms, so both upstream connections are open when the probe runs.
        await asyncio.sleep(PROBE_AFTER_SECONDS)
        during = await asyncio.to_thread(_hops, ctx)
        await both
        after = await asyncio.to_thread(_hops, ctx)
    finally:
        await arm.aclose()
    if failures:
        raise RuntimeError(f"warm-up turns failed: {'; '.join(failures)}")
    kept = {hop.to_json()["hop"] for hop in after}
    return {
        "hops": [hop.to_json() for hop in during],
        "all_nodelay": all(hop.nodelay == hop.sockets > 0 for hop in during),
        "kept_alive_after_turn": {
            "inference -> emulator": "inference -> emulator" in kept,
            "bench -> emulator": "bench -> emulator" in kept,
        },
    }
