"""The emulator's ceiling: chunks/s and turns/s it serves with nothing else in the way.

A light client (httpx, SSE bodies read but not parsed) keeps `concurrency` zero-delay
streams going for a few seconds, once with long replies (chunks/s) and once with
short ones (turns/s). Both are Python processes on the same cores, so this is the
ceiling of the emulator and a load client together, the most the direct arm could
reach; both CPU shares are reported (near 100 % shows which of the two was the limit).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from ..context import BenchContext
from ..stats import rate
from ..upstream import MODEL, Reply


async def _streams(
    client: httpx.AsyncClient, concurrency: int, seconds: float
) -> tuple[int, float]:
    """Run streams back to back on `concurrency` workers; (complete streams, seconds)."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "ceiling"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    turns = 0
    started = time.perf_counter()
    stop_at = started + seconds

    async def worker() -> None:
        nonlocal turns
        while time.perf_counter() < stop_at:
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                async for _ in response.aiter_raw():
                    pass
                if response.status_code == 200:
                    turns += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return turns, time.perf_counter() - started


async def _measure(ctx: BenchContext, reply: Reply) -> dict[str, Any]:
    plan = ctx.options.ceiling
    await ctx.set_reply(reply)
    limits = httpx.Limits(max_connections=plan.concurrency * 2)
    async with (
        httpx.AsyncClient(
            base_url=ctx.endpoints.emulator_url, limits=limits, trust_env=False, timeout=30
        ) as client,
        ctx.watch.measure() as usage,
    ):
        turns, seconds = await _streams(client, plan.concurrency, plan.seconds)
    return {
        "reply_tokens": reply.tokens,
        "concurrency": plan.concurrency,
        "turns_per_s": round(rate(turns, seconds), 1),
        "chunks_per_s": round(rate(turns * reply.tokens, seconds), 1),
        "emulator_cpu_percent": usage.cpu_percent("emulator"),
        "client_cpu_percent": usage.cpu_percent("bench"),
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    """Both ceilings; also kept on the context so other scenarios can flag results near them."""
    plan = ctx.options.ceiling
    streams = await _measure(ctx, plan.stream_reply)
    turns = await _measure(ctx, plan.turn_reply)
    ctx.emulator_ceiling = {
        "chunks_per_s": streams["chunks_per_s"],
        "turns_per_s": turns["turns_per_s"],
    }
    return {"streams": streams, "turns": turns}
