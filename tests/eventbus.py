"""Publishing domain events straight to the bus, as any other system may."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from chatbus_contracts.common import Role, TokenUsage, utc_now
from chatbus_contracts.events import ConversationCreated, MessageCreated, UsageRecorded
from chatbus_contracts.streams import Retention, StreamSpec
from chatbus_runtime.bus import create_broker, publish_event, stop_broker
from chatbus_runtime.settings import ServiceSettings
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from opentelemetry.sdk.trace import TracerProvider

from .infra import Infra
from .stack import Stack


@asynccontextmanager
async def connected_bus(stack: Stack, name: str = "test") -> AsyncIterator[NatsBroker]:
    """A broker connected to the test NATS (publishing only)."""
    async with broker_at(stack.infra.nats_url, name) as broker:
        yield broker


@asynccontextmanager
async def broker_at(nats_url: str, name: str = "test") -> AsyncIterator[NatsBroker]:
    """A broker of the services' kind (settings from the environment) connected to
    `nats_url`; subscribers added to it run once it is started."""
    broker = create_broker(
        ServiceSettings(nats_url=nats_url), service_name=name, tracer_provider=TracerProvider()
    )
    await broker.connect()
    try:
        yield broker
    finally:
        await stop_broker(broker)


@asynccontextmanager
async def jetstream(infra: Infra) -> AsyncIterator[JetStreamContext]:
    """A plain nats-py JetStream context on the test NATS (reading streams directly)."""
    connection = await nats.connect(infra.nats_url)
    try:
        yield connection.jetstream()
    finally:
        await connection.close()


def scratch_stream(
    kind: str, *, retention: Retention = "limits", wildcard: bool = False
) -> StreamSpec:
    """A stream of its own for one test: `<KIND>_<random>` on `<kind>.<random>` (`.>`)."""
    name = uuid.uuid4().hex[:8]
    subject = f"{kind.lower()}.{name}" + (".>" if wildcard else "")
    return StreamSpec(
        name=f"{kind.upper()}_{name}", subjects=(subject,), retention=retention, max_age_seconds=600
    )


def usage_event(user: str) -> UsageRecorded:
    """A small billed call of `user` (gpt-4o-mini, 3 + 2 tokens)."""
    return UsageRecorded(
        event_id=uuid.uuid4(),
        user_id=user,
        request_id=uuid.uuid4(),
        conversation_id=None,
        message_id=None,
        provider="openai",
        model="gpt-4o-mini",
        usage=TokenUsage(prompt_tokens=3, completion_tokens=2),
    )


def conversation_created(user: str, title: str) -> ConversationCreated:
    """A new conversation of `user`."""
    return ConversationCreated(
        event_id=uuid.uuid4(),
        user_id=user,
        conversation_id=uuid.uuid4(),
        title=title,
        created_at=utc_now(),
    )


def message_created(
    user: str,
    conversation_id: uuid.UUID,
    content: str,
    *,
    role: Role = "user",
    parent_id: uuid.UUID | None = None,
    context_message_ids: list[uuid.UUID] | None = None,
) -> MessageCreated:
    """A new message in the conversation."""
    return MessageCreated(
        event_id=uuid.uuid4(),
        user_id=user,
        message_id=uuid.uuid4(),
        conversation_id=conversation_id,
        request_id=uuid.uuid4(),
        role=role,
        content=content,
        parent_id=parent_id,
        created_at=utc_now(),
        context_message_ids=context_message_ids or [],
    )


async def publish_conversation(bus: NatsBroker, user: str, title: str) -> uuid.UUID:
    """A new conversation of `user`, published; its id."""
    created = conversation_created(user, title)
    await publish_event(bus, created)
    return created.conversation_id


async def publish_message(
    bus: NatsBroker,
    user: str,
    conversation_id: uuid.UUID,
    content: str,
    *,
    role: Role = "user",
    parent_id: uuid.UUID | None = None,
    context_message_ids: list[uuid.UUID] | None = None,
) -> uuid.UUID:
    """A new message in the conversation, published; its id."""
    message = message_created(
        user,
        conversation_id,
        content,
        role=role,
        parent_id=parent_id,
        context_message_ids=context_message_ids,
    )
    await publish_event(bus, message)
    return message.message_id
