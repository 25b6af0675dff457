"""The embeddings backlog: how fast a cold embeddings service works through stored events.

N synthetic `message.created` events are published straight to the EVENTS stream
(`publish_event`, with their PubAcks) while the embeddings service is not running;
the backlog it finds when it starts is those plus every message of the earlier
scenarios. The rate is rows appearing in `embeddings.message_embeddings` over a fixed
window that starts with the first row (so the model's load time is reported apart).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from chatbus_contracts import subjects
from chatbus_contracts.common import utc_now
from chatbus_contracts.events import MessageCreated
from chatbus_contracts.streams import EVENTS
from chatbus_runtime.bus import publish_event
from faststream.nats import NatsBroker

from ..context import BenchContext
from ..database import Database
from ..stats import rate

POLL_SECONDS = 0.25
PUBLISH_BATCH = 200
_WORDS = ("latency", "stream", "socket", "gateway", "vector", "message", "reply", "model")


def synthetic_content(index: int) -> str:
    """A message of about forty words, different for every index."""
    words = [_WORDS[(index * 7 + offset) % len(_WORDS)] for offset in range(36)]
    return f"Backlog message {index}: " + " ".join(words) + "."


async def _publish(broker: NatsBroker, run_id: str, count: int) -> float:
    """Publish `count` events (in concurrent batches); seconds it took."""
    user = f"bench-{run_id}-embeddings"
    conversation = uuid.uuid4()
    started = time.perf_counter()
    for first in range(0, count, PUBLISH_BATCH):
        events = [
            MessageCreated(
                event_id=uuid.uuid4(),
                user_id=user,
                message_id=uuid.uuid4(),
                conversation_id=conversation,
                request_id=uuid.uuid4(),
                role="user",
                content=synthetic_content(index),
                created_at=utc_now(),
            )
            for index in range(first, min(first + PUBLISH_BATCH, count))
        ]
        await asyncio.gather(*(publish_event(broker, event) for event in events))
    return time.perf_counter() - started


async def _backlog(broker: NatsBroker) -> int:
    """`message.created` events kept in the EVENTS stream."""
    info = await broker.connection.jetstream().stream_info(
        EVENTS.name, subjects_filter=subjects.MESSAGE_CREATED
    )
    return int((info.state.subjects or {}).get(subjects.MESSAGE_CREATED, 0))


async def _first_row(
    ctx: BenchContext, database: Database, within_seconds: float
) -> tuple[float | None, int]:
    """When the first rows appeared (`perf_counter`) and how many; (None, 0) if none did."""
    deadline = time.perf_counter() + within_seconds
    while time.perf_counter() < deadline:
        await asyncio.sleep(POLL_SECONDS)
        ctx.alive_or_raise()
        rows = await database.embedding_rows()
        if rows:
            return time.perf_counter(), rows
    return None, 0


async def run(ctx: BenchContext) -> dict[str, Any]:
    """Publish, start the service, watch the rows."""
    plan = ctx.options.embeddings
    settled = await ctx.settle()
    broker = NatsBroker(ctx.endpoints.nats_url)
    await broker.connect()
    try:
        publish_seconds = await _publish(broker, ctx.run_id, plan.events)
        backlog = await _backlog(broker)
    finally:
        await broker.stop()
    database = await Database.connect(ctx.endpoints.database_url)
    try:
        async with ctx.watch.measure() as usage:
            started = time.perf_counter()
            ctx.stack.start_embeddings()
            first_at, first_rows = await _first_row(ctx, database, plan.load_seconds)
            rows, now = first_rows, time.perf_counter()
            while first_at is not None and now - first_at < plan.measure_seconds and rows < backlog:
                await asyncio.sleep(POLL_SECONDS)
                ctx.alive_or_raise()
                rows, now = await database.embedding_rows(), time.perf_counter()
    finally:
        await database.close()
    return {
        "settle_seconds": settled,
        "synthetic_events": plan.events,
        "publish_per_s": round(rate(plan.events, publish_seconds), 1),
        "backlog": backlog,
        "rows": rows,
        "drained": rows >= backlog,
        "seconds_to_first_row": round(first_at - started, 2) if first_at else None,
        "rows_per_s": round(rate(rows - first_rows, now - first_at), 1) if first_at else None,
        "usage": usage.to_json(),
    }
