"""The conversation service's whole wiring: event consumer, queries and commands."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from chatbus_contracts import subjects
from chatbus_contracts.conversations import (
    ConversationChanged,
    ConversationRemoved,
    CreateConversation,
    DeleteConversation,
    GetPreferences,
    Preferences,
    Refused,
    SearchMessages,
    SearchResults,
    SetPreferences,
    UpdateConversation,
)
from chatbus_contracts.events import (
    ConversationCreated,
    ConversationDeleted,
    ConversationUpdated,
    MessageCreated,
)
from chatbus_contracts.queries import (
    ConversationFound,
    ConversationPage,
    GetConversation,
    GetHistory,
    GetMessage,
    HistoryReply,
    ListConversations,
    MessageFound,
)
from chatbus_contracts.streams import CONVERSATION_CONSUMER
from chatbus_runtime.bus import create_broker, start_broker, stop_broker
from chatbus_runtime.consumers import consume
from chatbus_runtime.database import create_engine, upgrade_schema
from chatbus_runtime.rpc import Handler, RequestT, replies_to
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import TracerProvider

from .barrier import EventsReadBarrier
from .commands import ConversationCommands
from .models import SCHEMA
from .preferences_bucket import PreferencesBucket
from .projection import Projection
from .search import search_messages
from .settings import ConversationSettings
from .store import ConversationStore, InvalidCursor

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
QUEUE = subjects.CONVERSATION_QUEUE
# Events fetched at once (and handled at once, each on its own connection).
EVENTS_FETCHED = 16
# How long a REST read waits for events published before it (history waits longer).
READ_YOUR_WRITES_SECONDS = 1.0


class ConversationService:
    """Owns conversations and messages; answers history and conversation queries."""

    def __init__(self, settings: ConversationSettings, tracer_provider: TracerProvider) -> None:
        self.settings = settings
        self.broker: NatsBroker = create_broker(
            settings, service_name="conversation", tracer_provider=tracer_provider
        )
        # Room for a fetch of events handled at once and one subject answering at its
        # limit (the title commands, under load): a connection beyond the pool is opened
        # and closed per use (a Postgres backend, TLS attempt, type introspection and
        # statement preparation each time: ~15% of this service's CPU at 110 turns/s with
        # a pool of 20).
        self.engine = create_engine(
            settings.database_url, pool_size=settings.query_workers + EVENTS_FETCHED
        )
        self.store = ConversationStore(self.engine)
        self.projection = Projection(self.engine, title_max_chars=settings.title_max_chars)
        self.preferences = PreferencesBucket(self.broker)
        self.barrier = EventsReadBarrier(
            self.broker,
            CONVERSATION_CONSUMER,
            subjects.MESSAGE_CREATED,
            timeout_seconds=settings.history_wait_seconds,
        )
        self.commands = ConversationCommands(
            self.broker, self.store, self.projection, self.preferences, self.barrier
        )
        self._wire_events()
        self._wire_queries()
        self._wire_commands()

    def _wire_events(self) -> None:
        projection = self.projection
        appliers: dict[str, Callable[[bytes], Awaitable[object]]] = {
            subjects.CONVERSATION_CREATED: lambda body: projection.conversation_created(
                ConversationCreated.model_validate_json(body)
            ),
            subjects.MESSAGE_CREATED: lambda body: projection.message_created(
                MessageCreated.model_validate_json(body)
            ),
            subjects.CONVERSATION_UPDATED: lambda body: projection.conversation_updated(
                ConversationUpdated.model_validate_json(body)
            ),
            subjects.CONVERSATION_DELETED: lambda body: projection.conversation_deleted(
                ConversationDeleted.model_validate_json(body)
            ),
        }

        own_events = self.commands.own_events

        async def on_event(msg: Msg) -> None:
            if not own_events.came_back(msg):
                await appliers[msg.subject](msg.data)

        consume(self.broker, CONVERSATION_CONSUMER, on_event, batch_size=EVENTS_FETCHED)

    def _answer(
        self, subject: str, request_type: type[RequestT]
    ) -> Callable[[Handler[RequestT]], Handler[RequestT]]:
        # Several at once: one history query waiting for its events must not hold up the
        # rest of its subject.
        return replies_to(
            self.broker,
            subject,
            request_type,
            queue=QUEUE,
            max_workers=self.settings.query_workers,
        )

    def _wire_queries(self) -> None:
        store, barrier, bucket, answer = self.store, self.barrier, self.preferences, self._answer

        @answer(subjects.CONVERSATION_QUERY_LIST, ListConversations)
        async def list_conversations(query: ListConversations) -> ConversationPage | Refused:
            # A client lists right after chat.end: show that turn (briefly bounded: a stuck
            # event must not make every list slow).
            await barrier.wait(READ_YOUR_WRITES_SECONDS)
            try:
                return await store.list_conversations(query.user_id, query.limit, query.cursor)
            except InvalidCursor:
                return Refused(
                    code="invalid_request", message="not a cursor of this list", field="cursor"
                )

        @answer(subjects.CONVERSATION_QUERY_GET, GetConversation)
        async def get_conversation(query: GetConversation) -> ConversationFound:
            if query.include_messages:
                # Read-your-writes: a client reloads the conversation right after chat.end.
                await barrier.wait(READ_YOUR_WRITES_SECONDS)
            found = await store.get_conversation(
                query.user_id, query.conversation_id, include_messages=query.include_messages
            )
            if found is None and not query.include_messages and await barrier.wait():
                # It may have been created by a turn whose events are not stored yet.
                found = await store.get_conversation(
                    query.user_id, query.conversation_id, include_messages=query.include_messages
                )
            return ConversationFound(conversation=found)

        @answer(subjects.CONVERSATION_QUERY_HISTORY, GetHistory)
        async def get_history(query: GetHistory) -> HistoryReply:
            if query.new_conversation:  # asked only when the bucket had no preferences
                preferences = await store.preferences(query.user_id)
                await bucket.offer(query.user_id, preferences)
                return HistoryReply.new_conversation(preferences.as_settings())
            caught_up = await barrier.wait()
            branch = await store.history(
                query.user_id,
                query.conversation_id,
                leaf_id=query.leaf_id,
                exclude_request_id=query.exclude_request_id,
            )
            if branch is None:
                return HistoryReply(found=False, messages=[], caught_up=caught_up)
            messages, settings, untitled = branch
            return HistoryReply(
                found=True,
                messages=messages,
                settings=settings,
                untitled=untitled,
                caught_up=caught_up,
            )

        @answer(subjects.CONVERSATION_QUERY_MESSAGE, GetMessage)
        async def get_message(query: GetMessage) -> MessageFound:
            caught_up = await barrier.wait()
            message = await store.message(query.user_id, query.message_id)
            return MessageFound(message=message, caught_up=caught_up)

        @answer(subjects.CONVERSATION_QUERY_SEARCH, SearchMessages)
        async def search(query: SearchMessages) -> SearchResults:
            return await search_messages(self.engine, query)

        @answer(subjects.PREFERENCES_QUERY_GET, GetPreferences)
        async def get_preferences(query: GetPreferences) -> Preferences:
            return await store.preferences(query.user_id)

    def _wire_commands(self) -> None:
        commands, answer = self.commands, self._answer

        @answer(subjects.CONVERSATION_COMMAND_CREATE, CreateConversation)
        async def create(command: CreateConversation) -> ConversationChanged:
            return await commands.create(command)

        @answer(subjects.CONVERSATION_COMMAND_UPDATE, UpdateConversation)
        async def update(command: UpdateConversation) -> ConversationChanged | Refused:
            return await commands.update(command)

        @answer(subjects.CONVERSATION_COMMAND_DELETE, DeleteConversation)
        async def delete(command: DeleteConversation) -> ConversationRemoved | Refused:
            return await commands.delete(command)

        @answer(subjects.PREFERENCES_COMMAND_SET, SetPreferences)
        async def set_preferences(command: SetPreferences) -> Preferences:
            return await commands.set_preferences(command.user_id, command.preferences)

    async def start(self) -> None:
        """Migrate, connect, declare streams and the consumer, then start consuming."""
        if self.settings.migrate_on_start:
            await upgrade_schema(MIGRATIONS, self.settings.database_url, SCHEMA)
        await start_broker(self.broker)
        logger.info("conversation service started")

    async def stop(self) -> None:
        """Stop consuming, then close the database pool."""
        await stop_broker(self.broker)
        await self.engine.dispose()
