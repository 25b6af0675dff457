"""Concurrency 1: what chatbus adds to one turn when nothing else is going on.

Turns alternate between the arms (direct then chatbus, then chatbus then direct, ...)
so drift on a shared machine hits both alike. One socket, one SDK client, both kept
open: the added latency is the path, not connection setup. Every question carries a
marker, so the emulator's request log splits TTFT into before and after the provider
call (`breakdown.py`).
"""

from __future__ import annotations

from typing import Any

from ..breakdown import arrivals, breakdown, marked
from ..context import QUESTION, BenchContext
from ..samples import Arm, TurnSample, added_latency, totals
from ..websocket import ChatbusArm


async def run(ctx: BenchContext) -> dict[str, Any]:
    """Warm-up pairs, then `turns_per_arm` measured pairs."""
    plan = ctx.options.overhead
    timeout = ctx.options.turn_timeout_seconds
    await ctx.set_reply(plan.reply)
    expected = plan.reply.expected
    (user,) = ctx.new_users(1, "overhead")
    chatbus = ChatbusArm(ctx.endpoints.ws_url, ctx.stack.token(user))
    samples: dict[Arm, list[tuple[str, TurnSample]]] = {"direct": [], "chatbus": []}
    try:
        for _ in range(plan.warmup_turns):
            await ctx.direct.turn(QUESTION, expected, timeout)
            await chatbus.turn(QUESTION, expected, timeout)
        settled = await ctx.settle()
        async with ctx.watch.measure() as usage:
            for index in range(plan.turns_per_arm):
                order: tuple[Arm, Arm] = ("direct", "chatbus")
                if index % 2:
                    order = ("chatbus", "direct")
                for arm in order:
                    client = ctx.direct if arm == "direct" else chatbus
                    marker, question = marked(QUESTION)
                    samples[arm].append((marker, await client.turn(question, expected, timeout)))
        received = arrivals(await ctx.upstream.requests())
    finally:
        await chatbus.aclose()
    direct = totals(sample for _, sample in samples["direct"])
    ours = totals(sample for _, sample in samples["chatbus"])
    return {
        "reply": {
            "tokens": plan.reply.tokens,
            "first_token_delay_ms": plan.reply.first_token_delay_ms,
            "inter_token_delay_ms": plan.reply.inter_token_delay_ms,
        },
        "settle_seconds": settled,
        "direct": direct.to_json(),
        "chatbus": ours.to_json(),
        "added": added_latency(ours, direct),
        "ttft_split": breakdown(samples["direct"], samples["chatbus"], received),
        "usage": usage.to_json(),
    }
