"""Sustained streams: N concurrent turns of 64 chunks at 20 ms spacing, per arm.

Each of the N streams has its own socket (and user) in the chatbus arm; the direct arm
shares one SDK client (a connection each). A stream runs its turns back to back; the
streams start spread over one turn's duration, so after the first turn N streams are
in flight at once instead of arriving as one burst. Holding N streams means starting
N / 1.3 s turns a second, so where chatbus cannot start turns that fast the turns
queue: `peak_streaming` (turns between their first chunk and their end at one moment)
says how many streams were really sustained. A phase stops starting turns at its
deadline, so an overloaded level ends in bounded time.

Rounds alternate which arm goes first (one round above `single_round_above` streams).
At the profiled concurrency one more chatbus phase runs under py-spy; its numbers are
kept apart (py-spy pauses the process for every sample).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Protocol

from .. import profiling
from ..context import QUESTION, BenchContext
from ..options import PROFILED_STREAMS
from ..samples import Arm, Expected, TurnSample, added_latency, peak_streaming, totals
from ..stats import rate
from ..upstream import Reply
from ..websocket import ChatbusArm, close_sockets, open_sockets

NEAR_CEILING = 0.7
"""A demand above this share of the emulator's measured ceiling is flagged."""
ON_PACE = 1.25
"""A turn is on pace when its mean chunk gap is within this factor of the spacing."""
DEADLINE_SLACK_SECONDS = 5.0


class _Client(Protocol):
    async def turn(self, content: str, expected: Expected, time_limit: float) -> TurnSample: ...


def turn_seconds(reply: Reply) -> float:
    """How long the emulator takes to stream `reply`."""
    return (reply.first_token_delay_ms + reply.inter_token_delay_ms * (reply.tokens - 1)) / 1000


def phase_deadline(reply: Reply, turns: int) -> float:
    """Seconds after which a phase starts no more turns: the plan's duration plus slack."""
    return turn_seconds(reply) * (turns + 1) + DEADLINE_SLACK_SECONDS


async def _phase(
    clients: Sequence[_Client], turns: int, reply: Reply, time_limit: float, deadline: float
) -> tuple[list[TurnSample], float]:
    """Every client runs up to `turns` turns, none started after `deadline` s; (samples, s)."""
    samples: list[TurnSample] = []
    spread = turn_seconds(reply)
    started = time.perf_counter()

    async def stream(index: int, client: _Client) -> None:
        await asyncio.sleep(spread * index / len(clients))
        for _ in range(turns):
            if time.perf_counter() - started > deadline:
                return
            samples.append(await client.turn(QUESTION, reply.expected, time_limit))

    await asyncio.gather(*(stream(index, client) for index, client in enumerate(clients)))
    return samples, time.perf_counter() - started


def _on_pace(samples: Sequence[TurnSample], reply: Reply) -> float | None:
    """Share of completed turns whose mean chunk gap kept to the emulator's spacing."""
    good = [sample for sample in samples if sample.ok and sample.gaps_ms]
    if not good or reply.inter_token_delay_ms <= 0:
        return None
    limit = ON_PACE * reply.inter_token_delay_ms
    paced = sum(1 for sample in good if sum(sample.gaps_ms) / len(sample.gaps_ms) <= limit)
    return round(paced / len(good), 3)


async def _profiled(ctx: BenchContext, clients: Sequence[_Client], reply: Reply) -> dict[str, Any]:
    """One more chatbus phase, long enough to dump and then record gateway and inference."""
    plan = ctx.options.streams
    wanted = ("gateway", "inference")
    targets = {name: pid for name, pid in ctx.stack.pids().items() if name in wanted}
    deadline = turn_seconds(reply) + plan.profile_seconds + 2
    phase = asyncio.create_task(
        _phase(clients, 1_000, reply, ctx.options.turn_timeout_seconds, deadline)
    )
    await asyncio.sleep(turn_seconds(reply))
    stem = f"{ctx.stem}-streams{len(clients)}"
    dumps = await profiling.dump(targets, ctx.output_dir, stem)
    recorded = await profiling.record(targets, plan.profile_seconds, ctx.output_dir, stem)
    summary = ctx.output_dir / f"{stem}-profile.md"
    title = f"py-spy profile, chatbus arm at {len(clients)} streams ({ctx.stem})"
    await asyncio.to_thread(summary.write_text, profiling.render_top(recorded, title))
    samples, seconds = await phase
    return {
        "concurrency": len(clients),
        "seconds": round(seconds, 2),
        "dumps": dumps,
        "summary": summary.name,
        "processes": recorded,
        "chatbus_under_profiler": totals(samples).to_json(),
    }


async def _level(ctx: BenchContext, streams: int, profile: bool) -> dict[str, Any]:
    plan = ctx.options.streams
    reply = plan.reply
    time_limit = ctx.options.turn_timeout_seconds
    deadline = phase_deadline(reply, plan.turns_per_stream)
    tokens = ctx.tokens(ctx.new_users(streams, f"s{streams}"))
    sockets = await open_sockets(ctx.endpoints.ws_url, tokens)
    chatbus = [
        ChatbusArm(ctx.endpoints.ws_url, token, socket)
        for token, socket in zip(tokens, sockets, strict=True)
    ]
    arms: dict[Arm, Sequence[_Client]] = {"direct": [ctx.direct] * streams, "chatbus": chatbus}
    samples: dict[Arm, list[TurnSample]] = {"direct": [], "chatbus": []}
    seconds: dict[Arm, float] = {"direct": 0.0, "chatbus": 0.0}
    phases: list[dict[str, Any]] = []
    profiled: dict[str, Any] | None = None
    rounds = 1 if streams > plan.single_round_above else plan.rounds
    try:
        for round_index in range(rounds):
            order: tuple[Arm, Arm] = ("direct", "chatbus")
            if round_index % 2:
                order = ("chatbus", "direct")
            for arm in order:
                ctx.alive_or_raise()
                settled = await ctx.settle()
                async with ctx.watch.measure() as usage:
                    got, took = await _phase(
                        arms[arm], plan.turns_per_stream, reply, time_limit, deadline
                    )
                samples[arm] += got
                seconds[arm] += took
                failed = sum(1 for sample in got if not sample.ok)
                note = f"{len(got)} turns, {failed} failed, {took:.0f}s"
                ctx.say(f"  {streams} streams, {arm}: {note}")
                chunks = sum(sample.chunks for sample in got)
                phases.append(
                    {
                        "arm": arm,
                        "round": round_index,
                        "settle_seconds": settled,
                        "cpu_ms_per_chunk": usage.cpu_ms_per(chunks) if arm == "chatbus" else {},
                        **usage.to_json(),
                    }
                )
        if profile:
            await ctx.settle()
            profiled = await _profiled(ctx, chatbus, reply)
    finally:
        await close_sockets(sockets)
        # A stream that lost its socket reconnected on a new one: close those too.
        await asyncio.gather(*(arm.aclose() for arm in chatbus))
    direct, ours = totals(samples["direct"]), totals(samples["chatbus"])
    demand = streams * 1000 / reply.inter_token_delay_ms if reply.inter_token_delay_ms else 0.0
    ceiling = ctx.emulator_ceiling.get("chunks_per_s")
    return {
        "streams": streams,
        "rounds": rounds,
        "peak_streaming": {arm: peak_streaming(samples[arm]) for arm in seconds},
        "chunks_per_s": {
            arm: round(rate(totals(samples[arm]).chunks, seconds[arm]), 1) for arm in seconds
        },
        "on_pace": {arm: _on_pace(samples[arm], reply) for arm in seconds},
        "lost_chunks": ours.lost_chunks,
        "direct": direct.to_json(),
        "chatbus": ours.to_json(),
        "added": added_latency(ours, direct),
        "demand_chunks_per_s": demand,
        "near_emulator_ceiling": bool(ceiling) and demand >= NEAR_CEILING * (ceiling or 0.0),
        "phases": phases,
        "profile": profiled,
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    """Every concurrency level; the profile at 200 streams (the largest level in quick mode)."""
    plan = ctx.options.streams
    await ctx.set_reply(plan.reply)
    levels = plan.concurrencies
    profiled = PROFILED_STREAMS if PROFILED_STREAMS in levels else max(levels)
    results = []
    for streams in levels:
        results.append(await _level(ctx, streams, ctx.options.profile and streams == profiled))
    return {
        "reply": {
            "tokens": plan.reply.tokens,
            "first_token_delay_ms": plan.reply.first_token_delay_ms,
            "inter_token_delay_ms": plan.reply.inter_token_delay_ms,
        },
        "turns_per_stream": plan.turns_per_stream,
        "phase_deadline_seconds": round(phase_deadline(plan.reply, plan.turns_per_stream), 2),
        "levels": results,
    }
