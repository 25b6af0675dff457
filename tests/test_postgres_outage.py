"""Postgres down for longer than the redelivery window: consumers pause, then catch up.

Everything here writes to a Postgres of its own, stopped and started again on the same
port and data directory; NATS is the session's. The consumers run with a redelivery
policy (`CHATBUS_MAX_DELIVER`, `CHATBUS_REDELIVERY_*`) that dead-letters a failing
message within a second, so only a pause lets their messages through an outage of
seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from chatbus_cli.dlq import list_dead_letters
from chatbus_cli.embedded import EmbeddedPostgres, free_port
from chatbus_contracts.events import ConversationCreated, Event, MessageCreated
from chatbus_contracts.streams import EVENTS, ConsumerSpec, StreamSpec
from chatbus_conversation.app import ConversationService
from chatbus_conversation.settings import ConversationSettings
from chatbus_runtime.bus import (
    create_broker,
    declare_streams,
    event_headers,
    start_broker,
    stop_broker,
)
from chatbus_runtime.consumers import consume, consume_batches
from chatbus_runtime.database import IDLE_PING_SECONDS, create_engine
from chatbus_runtime.settings import ServiceSettings
from chatbus_usage.app import UsageService
from chatbus_usage.settings import UsageSettings
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from .eventbus import (
    conversation_created,
    jetstream,
    message_created,
    scratch_stream,
    usage_event,
)
from .infra import Infra
from .stack import Stack

pytestmark = pytest.mark.integration

DATABASE = "chatbus_outage"
# Three deliveries, 50 ms apart at first: without the pause, a message that fails while
# Postgres is down is dead-lettered within a second.
FAST_RETRIES: dict[str, Any] = {
    "max_deliver": 3,
    "redelivery_first_delay_seconds": 0.05,
    "redelivery_max_delay_seconds": 0.2,
}
OUTAGE_SECONDS = 4.0
PAUSE_LOGGER = "chatbus_runtime.outages"
BATCH_SIZE = 4


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A Postgres only this module uses, so it can be stopped without harming other tests."""
    tmp = Path(tempfile.mkdtemp(prefix="chatbus-outage-"))
    # A fixed port: the restarted server must be found where the services look for it.
    postgres = EmbeddedPostgres(tmp / "pg", port=free_port(), fsync=False)
    try:
        with postgres:
            postgres.ensure_database(DATABASE)
            yield postgres
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.asynccontextmanager
async def _postgres_down(postgres: EmbeddedPostgres) -> AsyncIterator[None]:
    """Postgres stopped for the block, started again (same port and data) after."""
    await asyncio.to_thread(postgres.stop)
    try:
        yield
    finally:
        await asyncio.to_thread(postgres.start)


async def _fetch(postgres: EmbeddedPostgres, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(postgres.url(DATABASE).replace("+asyncpg", ""))
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def _publish(js: JetStreamContext, event: Event) -> int:
    ack = await js.publish(
        event.subject, event.model_dump_json().encode(), headers=event_headers(event)
    )
    return ack.seq


async def _eventually(
    check: Callable[[], Awaitable[bool]], *, within_seconds: float, state: object = None
) -> None:
    deadline = time.monotonic() + within_seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in time; state: {state!r}")
        await asyncio.sleep(0.1)


async def _dead_lettered(infra: Infra, consumer: str, stream_seqs: set[int]) -> set[int]:
    """Which of these originals were set aside for `consumer`."""
    entries = await list_dead_letters(infra.nats_url, consumer)
    return {e.letter.stream_seq for e in entries} & stream_seqs


def _pause_logs(caplog: pytest.LogCaptureFixture, consumer: str) -> tuple[int, int]:
    """(pauses, resumptions) logged for `consumer`."""
    records = [r for r in caplog.records if r.name == PAUSE_LOGGER and consumer in r.getMessage()]
    paused = sum(r.levelno == logging.WARNING and "paused" in r.getMessage() for r in records)
    resumed = sum(r.levelno == logging.INFO and "resumed" in r.getMessage() for r in records)
    return paused, resumed


def _conversation_events(user: str, title: str) -> tuple[ConversationCreated, MessageCreated]:
    created = conversation_created(user, title)
    return created, message_created(user, created.conversation_id, f"{title}, the message")


@contextlib.asynccontextmanager
async def _services_on(
    stack: Stack, postgres: EmbeddedPostgres
) -> AsyncIterator[tuple[UsageService, ConversationService]]:
    """Usage and conversation on `postgres`, in place of the stack's replicas."""
    common = {
        "nats_url": stack.infra.nats_url,
        "database_url": postgres.url(DATABASE),
        **FAST_RETRIES,
    }
    async with stack.paused(UsageService), stack.paused(ConversationService):
        usage = UsageService(UsageSettings(**common), stack.tracer_provider)
        conversation = ConversationService(ConversationSettings(**common), stack.tracer_provider)
        await usage.start()
        try:
            await conversation.start()
            try:
                yield usage, conversation
            finally:
                await conversation.stop()
        finally:
            await usage.stop()


async def test_services_pause_through_a_postgres_outage_and_catch_up(
    stack: Stack, own_postgres: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=PAUSE_LOGGER)
    user = f"outage-{uuid.uuid4().hex[:6]}"
    usage_events = [usage_event(user) for _ in range(6)]
    conversations = [_conversation_events(user, f"outage {i}") for i in range(3)]

    async def ledger() -> list[uuid.UUID]:
        rows = await _fetch(
            own_postgres, "SELECT event_id FROM usage.ledger WHERE user_id = $1", user
        )
        return [row["event_id"] for row in rows]

    async def messages() -> list[uuid.UUID]:
        rows = await _fetch(
            own_postgres, "SELECT id FROM conversation.messages WHERE user_id = $1", user
        )
        return [row["id"] for row in rows]

    async with _services_on(stack, own_postgres), jetstream(stack.infra) as js:
        # Before the outage: stored at once (and the services' pools hold connections).
        seqs = {"usage": {await _publish(js, usage_events[0])}, "conversation": set[int]()}
        for created, message in conversations[:1]:
            seqs["conversation"] |= {await _publish(js, created), await _publish(js, message)}

        async def first_stored() -> bool:
            return len(await ledger()) == 1 and len(await messages()) == 1

        await _eventually(first_stored, within_seconds=10)
        assert _pause_logs(caplog, "EVENTS/usage") == (0, 0)

        async with _postgres_down(own_postgres):
            for event in usage_events[1:]:
                seqs["usage"].add(await _publish(js, event))
            for created, message in conversations[1:]:
                seqs["conversation"] |= {await _publish(js, created), await _publish(js, message)}
            # Many redelivery windows long: the messages are held, each on its first delivery.
            await asyncio.sleep(OUTAGE_SECONDS)
            for consumer in ("usage", "conversation"):
                info = await js.consumer_info(EVENTS.name, consumer)
                assert info.num_ack_pending >= 1, consumer
                assert info.num_redelivered == 0, consumer
                assert await _dead_lettered(stack.infra, consumer, seqs[consumer]) == set()
                assert _pause_logs(caplog, f"EVENTS/{consumer}") == (1, 0)

        async def caught_up() -> bool:
            return len(await ledger()) == len(usage_events) and len(await messages()) == 3

        await _eventually(caught_up, within_seconds=30)
        for consumer in ("usage", "conversation"):

            async def settled(consumer: str = consumer) -> bool:
                info = await js.consumer_info(EVENTS.name, consumer)
                return bool(info.num_ack_pending == 0)

            # A message fetched by a pull the stopped stack replica left open stays pending
            # until its ack wait (30 s) passes and it is redelivered.
            await _eventually(settled, within_seconds=45, state=consumer)

    # Every event stored exactly once, none set aside, one pause and one resumption logged.
    assert sorted(await ledger()) == sorted(e.event_id for e in usage_events)
    assert sorted(await messages()) == sorted(m.message_id for _, m in conversations)
    stored = await _fetch(
        own_postgres, "SELECT id FROM conversation.conversations WHERE user_id = $1", user
    )
    assert sorted(row["id"] for row in stored) == sorted(
        c.conversation_id for c, _ in conversations
    )
    for consumer in ("usage", "conversation"):
        assert await _dead_lettered(stack.infra, consumer, seqs[consumer]) == set()
        assert _pause_logs(caplog, f"EVENTS/{consumer}") == (1, 1)


# --- the runtime alone: a consumer of our own, with a short ack wait ----------------------


@dataclass
class _Consumers:
    """A stream of this test's with two consumers: one message at a time, and batches."""

    stream: StreamSpec
    single: ConsumerSpec
    batched: ConsumerSpec
    handled: list[tuple[str, bytes, int]] = field(default_factory=list)  # consumer, data, dc


def _consumers(*, ack_wait_seconds: float) -> _Consumers:
    stream = scratch_stream("outage", wildcard=True)

    def consumer(durable: str) -> ConsumerSpec:
        return ConsumerSpec(
            durable=durable,
            stream=stream,
            filter_subjects=(stream.subjects[0].removesuffix(">") + durable,),
            ack_wait_seconds=ack_wait_seconds,
            max_deliver=3,
        )

    return _Consumers(stream, consumer("single"), consumer("batched"))


async def _insert(engine: AsyncEngine, data: bytes) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO outage_test (data) VALUES (:data) ON CONFLICT DO NOTHING"),
            {"data": data.decode()},
        )


@contextlib.asynccontextmanager
async def _consuming(
    infra: Infra, consumers: _Consumers, engine: AsyncEngine
) -> AsyncIterator[NatsBroker]:
    """A broker whose two handlers write each message's data to Postgres."""
    settings = ServiceSettings(nats_url=infra.nats_url, max_deliver=None)
    broker = create_broker(settings, service_name="outage-test", tracer_provider=TracerProvider())

    async def one(msg: Msg) -> None:
        await _insert(engine, msg.data)
        consumers.handled.append(("single", msg.data, msg.metadata.num_delivered or 0))

    async def many(msgs: list[Msg]) -> None:
        for msg in msgs:
            await _insert(engine, msg.data)
        for msg in msgs:
            consumers.handled.append(("batched", msg.data, msg.metadata.num_delivered or 0))

    consume(broker, consumers.single, one, batch_size=BATCH_SIZE)
    consume_batches(broker, consumers.batched, many, batch_size=BATCH_SIZE)

    await broker.connect()
    await declare_streams(broker, (consumers.stream,))
    await start_broker(broker, consumers.single, consumers.batched)
    try:
        yield broker
    finally:
        await stop_broker(broker)


@pytest.fixture
async def engine(own_postgres: EmbeddedPostgres) -> AsyncIterator[AsyncEngine]:
    await _fetch(own_postgres, "CREATE TABLE IF NOT EXISTS outage_test (data text PRIMARY KEY)")
    engine = create_engine(own_postgres.url(DATABASE))
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_a_held_message_keeps_its_delivery_past_the_ack_wait(
    infra: Infra, own_postgres: EmbeddedPostgres, engine: AsyncEngine
) -> None:
    """An outage of 2.5 ack waits: `in_progress` keeps every message on its first delivery,
    one at a time and in batches."""
    consumers = _consumers(ack_wait_seconds=2.0)
    prefix = consumers.stream.subjects[0].removesuffix(">")
    # As many as a fetch asks for, so none waits in a half-full fetch (up to its 5 s
    # timeout) before its handler runs: that wait is not covered, and longer than the
    # ack wait of this test.
    payloads = {
        consumer: [f"{consumer}-{uuid.uuid4().hex[:6]}".encode() for _ in range(BATCH_SIZE)]
        for consumer in ("single", "batched")
    }
    async with _consuming(infra, consumers, engine), jetstream(infra) as js:
        seqs: dict[str, set[int]] = {"single": set(), "batched": set()}
        async with _postgres_down(own_postgres):
            for consumer, datas in payloads.items():
                for data in datas:
                    seqs[consumer].add((await js.publish(prefix + consumer, data)).seq)
            await asyncio.sleep(2.5 * consumers.single.ack_wait_seconds)

        async def all_handled() -> bool:
            return len(consumers.handled) == 2 * BATCH_SIZE

        await _eventually(all_handled, within_seconds=20, state=consumers.handled)
        assert sorted(consumers.handled) == sorted(
            (consumer, data, 1) for consumer, datas in payloads.items() for data in datas
        )
        for consumer in ("single", "batched"):
            info = await js.consumer_info(consumers.stream.name, consumer)
            assert (info.num_redelivered, info.num_ack_pending) == (0, 0), consumer
            assert await _dead_lettered(infra, consumer, seqs[consumer]) == set()
        await js.delete_stream(consumers.stream.name)


async def test_a_service_stopping_while_paused_hands_its_messages_back(
    infra: Infra, own_postgres: EmbeddedPostgres, engine: AsyncEngine
) -> None:
    """Stopping does not wait for Postgres; the held message is nak'ed, so the next replica
    gets it at once (well within the 30 s ack wait), on its second delivery."""
    consumers = _consumers(ack_wait_seconds=30.0)
    prefix = consumers.stream.subjects[0].removesuffix(">")
    data = f"handed-back-{uuid.uuid4().hex[:6]}".encode()
    async with jetstream(infra) as js:
        async with _postgres_down(own_postgres):
            async with _consuming(infra, consumers, engine):
                await js.publish(prefix + "single", data)
                await asyncio.sleep(1.0)  # delivered, failed, held
                stopping = time.monotonic()
            assert time.monotonic() - stopping < 5
            assert consumers.handled == []
        async with _consuming(infra, consumers, engine):

            async def handled() -> bool:
                return bool(consumers.handled)

            await _eventually(handled, within_seconds=10)
        assert consumers.handled == [("single", data, 2)]
        await js.delete_stream(consumers.stream.name)


async def test_a_connection_idle_through_a_restart_is_replaced_before_use(
    own_postgres: EmbeddedPostgres, engine: AsyncEngine
) -> None:
    """Pooled connections are pinged only after `IDLE_PING_SECONDS` in the pool; one that
    Postgres dropped meanwhile is replaced at checkout, so the first query succeeds."""
    async with engine.connect() as connection:  # pooled, then back in the pool
        await connection.execute(text("SELECT 1"))
    async with _postgres_down(own_postgres):
        pass
    await asyncio.sleep(IDLE_PING_SECONDS)
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT 2"))).scalar_one() == 2
    async with engine.connect() as connection:  # the replacement goes on serving
        assert (await connection.execute(text("SELECT 3"))).scalar_one() == 3
