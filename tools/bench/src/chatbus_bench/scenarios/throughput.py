"""Completed turns per second with persistence on, under open-loop arrivals.

Turns are sent at a fixed rate whatever happens to earlier ones (open loop: a slow
system gets a backlog, not a breather), spread over a pool of sockets, each its own
user. The emulator answers at once, so what limits the rate is chatbus: the gateway,
JetStream, inference, and the conversation service writing the messages. A turn is
completed when its assistant message is a row in `conversation.messages`. Rates rise
step by step until completions fall behind the offered rate; the best completion rate
seen is the result. The rate of a step is measured between its first and its last
completion, so the fixed delay from send to stored does not count against it; a step
the system cannot keep up with shows its capacity (the backlog drains at that rate).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from ..context import QUESTION, BenchContext
from ..database import POLL_SECONDS, Database
from ..multiplex import MultiplexSocket, TrackedTurn
from ..stats import rate, summarize
from ..websocket import close_sockets, open_sockets

KEEPING_UP = 0.9
"""A step keeps up when it completes at least this share of the offered rate."""
NEAR_CEILING = 0.7


async def _send_on_schedule(
    sockets: Sequence[MultiplexSocket], per_second: float, count: int, out: list[TrackedTurn]
) -> None:
    started = time.perf_counter()
    for index in range(count):
        delay = started + index / per_second - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        out.append(await sockets[index % len(sockets)].send(QUESTION))


async def _watch(
    database: Database, turns: list[TrackedTurn], sending: asyncio.Task[None], deadline: float
) -> dict[str, float]:
    """Assistant message id -> when it was first seen stored, until all are or the deadline."""
    stored: dict[str, float] = {}
    while time.monotonic() < deadline:
        pending_accept = any(t.accepted_at is None and t.error is None for t in turns)
        waiting = {
            t.assistant_message_id
            for t in turns
            if t.assistant_message_id is not None and t.assistant_message_id not in stored
        }
        if sending.done() and not pending_accept and not waiting:
            break
        found = await database.stored_messages(waiting)
        now = time.perf_counter()
        stored.update(dict.fromkeys(found, now))
        await asyncio.sleep(POLL_SECONDS)
    return stored


def completion_rate_of(completed_at: Sequence[float]) -> float:
    """Completions per second between the first and the last one (0 with fewer than two)."""
    if len(completed_at) < 2:
        return 0.0
    return rate(len(completed_at) - 1, max(completed_at) - min(completed_at))


def _ms(values: list[float]) -> dict[str, Any]:
    return summarize(values).to_json()


async def _step(
    ctx: BenchContext, sockets: Sequence[MultiplexSocket], database: Database, per_second: float
) -> dict[str, Any]:
    plan = ctx.options.throughput
    count = max(1, round(per_second * plan.step_seconds))
    turns: list[TrackedTurn] = []
    started = time.perf_counter()
    async with ctx.watch.measure() as usage:
        sending = asyncio.create_task(_send_on_schedule(sockets, per_second, count, turns))
        deadline = time.monotonic() + plan.step_seconds + plan.drain_seconds
        stored = await _watch(database, turns, sending, deadline)
        if not sending.done():
            sending.cancel()
    sent_seconds = max((t.sent_at for t in turns), default=started) - started
    persisted_at = [
        stored[t.assistant_message_id] for t in turns if t.assistant_message_id in stored
    ]
    completed = len(persisted_at)
    completion_rate = completion_rate_of(persisted_at)
    errors: dict[str, int] = {}
    for turn in turns:
        if turn.error is not None:
            errors[turn.error] = errors.get(turn.error, 0) + 1
    ceiling = ctx.emulator_ceiling.get("turns_per_s") or 0.0
    return {
        "offered_per_s": per_second,
        "sent": len(turns),
        "sent_per_s": round(rate(len(turns), sent_seconds), 1) if len(turns) > 1 else None,
        "accepted": sum(1 for t in turns if t.accepted_at is not None),
        "ended": sum(1 for t in turns if t.ended_at is not None),
        "persisted": completed,
        "errors": errors,
        "completed_per_s": round(completion_rate, 1),
        "keeping_up": completed == count and completion_rate >= KEEPING_UP * per_second,
        "first_to_last_stored_s": round(max(persisted_at) - min(persisted_at), 2)
        if persisted_at
        else None,
        "accept_ms": _ms([(t.accepted_at - t.sent_at) * 1000 for t in turns if t.accepted_at]),
        "end_ms": _ms([(t.ended_at - t.sent_at) * 1000 for t in turns if t.ended_at]),
        "persisted_ms": _ms(
            [
                (stored[t.assistant_message_id] - t.sent_at) * 1000
                for t in turns
                if t.assistant_message_id in stored
            ]
        ),
        "near_emulator_ceiling": bool(ceiling) and completion_rate >= NEAR_CEILING * ceiling,
        "cpu_ms_per_turn": usage.cpu_ms_per(completed),
        "usage": usage.to_json(),
    }


async def run(ctx: BenchContext) -> dict[str, Any]:
    """Step through the plan's rates; stop after the first step that falls behind."""
    plan = ctx.options.throughput
    await ctx.set_reply(plan.reply)
    users = ctx.new_users(plan.sockets, "thr")
    raw = await open_sockets(ctx.endpoints.ws_url, ctx.tokens(users))
    sockets = [MultiplexSocket(socket) for socket in raw]
    database = await Database.connect(ctx.endpoints.database_url)
    steps: list[dict[str, Any]] = []
    try:
        for per_second in plan.rates:
            ctx.alive_or_raise()
            settled = await ctx.settle()
            step = {"settle_seconds": settled, **await _step(ctx, sockets, database, per_second)}
            steps.append(step)
            ctx.say(
                f"  offered {per_second}/s: {step['persisted']} of {step['sent']} stored, "
                f"{step['completed_per_s']}/s"
            )
            if not step["keeping_up"]:
                break
    finally:
        await asyncio.gather(*(socket.aclose() for socket in sockets))
        await close_sockets(raw)
        await database.close()
    best = max(steps, key=lambda step: step["completed_per_s"])
    sustained = [step["offered_per_s"] for step in steps if step["keeping_up"]]
    return {
        "reply_tokens": plan.reply.tokens,
        "sockets": plan.sockets,
        "step_seconds": plan.step_seconds,
        "max_completed_per_s": best["completed_per_s"],
        "max_sustained_offered_per_s": max(sustained, default=None),
        "steps": steps,
    }
