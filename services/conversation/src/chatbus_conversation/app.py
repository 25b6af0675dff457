"""The conversation service's whole wiring: event consumer and query responders."""

from __future__ import annotations

import logging
from pathlib import Path

from chatbus_contracts import subjects
from chatbus_contracts.events import ConversationCreated, MessageCreated
from chatbus_contracts.queries import (
    ConversationFound,
    ConversationPage,
    GetConversation,
    GetHistory,
    HistoryReply,
    ListConversations,
)
from chatbus_contracts.streams import CONVERSATION_CONSUMER
from chatbus_runtime.bus import create_broker, durable_subscription, start_broker
from chatbus_runtime.database import create_engine, upgrade_schema
from faststream.nats import NatsBroker, NatsMessage
from opentelemetry.sdk.trace import TracerProvider

from .barrier import EventsReadBarrier
from .models import SCHEMA
from .settings import ConversationSettings
from .store import ConversationStore, InvalidCursor

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


class ConversationService:
    """Owns conversations and messages; answers history and conversation queries."""

    def __init__(self, settings: ConversationSettings, tracer_provider: TracerProvider) -> None:
        self.settings = settings
        self.broker: NatsBroker = create_broker(
            settings, service_name="conversation", tracer_provider=tracer_provider
        )
        self.engine = create_engine(settings.database_url)
        self.store = ConversationStore(self.engine, title_max_chars=settings.title_max_chars)
        self.barrier = EventsReadBarrier(
            self.broker,
            CONVERSATION_CONSUMER,
            subjects.MESSAGE_CREATED,
            timeout_seconds=settings.history_wait_seconds,
        )
        self._wire()

    def _wire(self) -> None:
        broker, store, barrier = self.broker, self.store, self.barrier

        @broker.subscriber(**durable_subscription(CONVERSATION_CONSUMER, batch_size=16))
        async def on_event(msg: NatsMessage) -> None:
            body = msg.body
            if msg.raw_message.subject == subjects.CONVERSATION_CREATED:
                await store.apply_conversation_created(
                    ConversationCreated.model_validate_json(body)
                )
            else:
                await store.apply_message_created(MessageCreated.model_validate_json(body))

        @broker.subscriber(subjects.CONVERSATION_QUERY_LIST, queue=subjects.CONVERSATION_QUEUE)
        async def list_conversations(query: ListConversations) -> ConversationPage:
            try:
                return await store.list_conversations(query.user_id, query.limit, query.cursor)
            except InvalidCursor:
                return ConversationPage(items=[], next_cursor=None)

        @broker.subscriber(subjects.CONVERSATION_QUERY_GET, queue=subjects.CONVERSATION_QUEUE)
        async def get_conversation(query: GetConversation) -> ConversationFound:
            found = await store.get_conversation(
                query.user_id, query.conversation_id, include_messages=query.include_messages
            )
            if found is None and await barrier.wait():
                # It may have been created by a turn whose events are not stored yet.
                found = await store.get_conversation(
                    query.user_id, query.conversation_id, include_messages=query.include_messages
                )
            return ConversationFound(conversation=found)

        @broker.subscriber(subjects.CONVERSATION_QUERY_HISTORY, queue=subjects.CONVERSATION_QUEUE)
        async def get_history(query: GetHistory) -> HistoryReply:
            caught_up = await barrier.wait()
            messages = await store.history(
                query.user_id, query.conversation_id, query.exclude_request_id
            )
            if messages is None:
                return HistoryReply(found=False, messages=[], caught_up=caught_up)
            return HistoryReply(found=True, messages=messages, caught_up=caught_up)

    async def start(self) -> None:
        """Migrate, connect, declare streams and the consumer, then start consuming."""
        if self.settings.migrate_on_start:
            await upgrade_schema(MIGRATIONS, self.settings.database_url, SCHEMA)
        await start_broker(self.broker, CONVERSATION_CONSUMER)
        logger.info("conversation service started")

    async def stop(self) -> None:
        """Stop consuming, then close the database pool."""
        await self.broker.stop()
        await self.engine.dispose()
