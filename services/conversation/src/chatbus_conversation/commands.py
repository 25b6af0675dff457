"""Conversation commands: change the row, publish the event, then commit.

The row is written (flushed, so the database has accepted it) and the event published
(its PubAck awaited) inside the transaction that holds the row lock; then it commits.
If the publish fails the change rolls back — unless JetStream stored the event and
only the PubAck was lost, and if the commit fails after a publish: in both cases this
service's own consumer applies the event later (the projection is idempotent and
ordered by `revision`). Readers of this service see their own change at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import uuid4

from chatbus_contracts import subjects
from chatbus_contracts.common import ChatSettings, derived_id, utc_now
from chatbus_contracts.conversations import (
    ConversationChanged,
    ConversationRemoved,
    CreateConversation,
    DeleteConversation,
    Preferences,
    Refused,
    UpdateConversation,
)
from chatbus_contracts.events import ConversationCreated, ConversationDeleted, ConversationUpdated
from chatbus_runtime.bus import publish_event
from faststream.nats import NatsBroker
from sqlalchemy import bindparam, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select

from .barrier import EventsReadBarrier
from .models import ConversationRow, MessageRow, PreferencesRow
from .own_events import OwnEvents
from .preferences_bucket import PreferencesBucket
from .projection import Projection
from .store import ConversationStore, owned
from .views import conversation_view, settings_of

logger = logging.getLogger(__name__)

_SETTING_FIELDS = frozenset(ChatSettings.model_fields)
NOT_FOUND = Refused(code="conversation_not_found", message="conversation not found")
_Result = TypeVar("_Result")
# A command that found no conversation waits for the backlog, polling less often than a
# read: under load every generated title can arrive early, while a client's rename or
# delete finds its conversation missing only in the moment after its first turn.
COMMAND_POLL_SECONDS = 0.02

# A generated title replaces the first words of the first message, and nothing else.
# (Parameters named after a column are reserved for SET in an UPDATE.)
_APPLY_GENERATED_TITLE = (
    update(ConversationRow)
    .where(
        owned(bindparam("owner"), bindparam("conversation")),
        col(ConversationRow.title_source) == "message",
    )
    .values(
        title=bindparam("generated_title"),
        title_source="generated",
        revision=col(ConversationRow.revision) + 1,
        updated_at=bindparam("now"),
    )
    .returning(ConversationRow)
    .execution_options(synchronize_session=False)
)


def filled(settings: ChatSettings, preferred: ChatSettings) -> ChatSettings:
    """`settings` with the preferred model, system prompt and memory where it sets none."""
    return settings.model_copy(
        update={
            "model": settings.model or preferred.model,
            "system_prompt": settings.system_prompt or preferred.system_prompt,
            # A conversation's own `False` turns memory off whatever the default.
            "memory": preferred.memory if settings.memory is None else settings.memory,
        }
    )


class ConversationCommands:
    """Create, change and delete conversations; set preferences."""

    def __init__(
        self,
        broker: NatsBroker,
        store: ConversationStore,
        projection: Projection,
        preferences: PreferencesBucket,
        barrier: EventsReadBarrier,
    ) -> None:
        self._broker = broker
        self._barrier = barrier
        self._store = store
        self._projection = projection
        self._preferences = preferences
        self.own_events = OwnEvents()

    async def create(self, command: CreateConversation) -> ConversationChanged:
        """A new, empty conversation with the user's preferences filled in."""
        conversation_id = uuid4()
        preferred = await self._store.preferences(command.user_id)
        settings = filled(command.settings, preferred.as_settings())
        event = ConversationCreated(
            event_id=derived_id(conversation_id, subjects.CONVERSATION_CREATED),
            user_id=command.user_id,
            conversation_id=conversation_id,
            title=command.title or "New conversation",
            title_source="user" if command.title else "message",
            settings=settings,
            created_at=utc_now(),
        )
        async with self._store.session() as session, session.begin():
            await self._projection.insert_conversation(session, event)
            await publish_event(self._broker, event)
        self.own_events.committed(event.event_id)
        found = await self._store.get_conversation(
            command.user_id, conversation_id, include_messages=False
        )
        assert found is not None
        return ConversationChanged(conversation=found)

    async def update(self, command: UpdateConversation) -> ConversationChanged | Refused:
        """Apply the named changes, or a generated title while the title is automatic."""
        if command.generated_title and not command.changed_fields:
            titled = await self._generated_title(command, command.generated_title)
            if titled is None and await self._barrier.wait(poll_seconds=COMMAND_POLL_SECONDS):
                # Proposed right after the first answer: under load the conversation's
                # `conversation.created` may still be in this service's backlog.
                titled = await self._generated_title(command, command.generated_title)
            if titled is not None:
                return titled
        return await self._once_events_are_stored(lambda: self._update(command))

    async def delete(self, command: DeleteConversation) -> ConversationRemoved | Refused:
        """Soft-delete; the `conversation.deleted` event tells every other owner of data."""
        return await self._once_events_are_stored(lambda: self._delete(command))

    async def _once_events_are_stored(
        self, attempt: Callable[[], Awaitable[_Result]]
    ) -> _Result | Refused:
        """`attempt`, and once more after the events published before it are stored if it
        found no conversation: a new conversation's `conversation.created` may still wait
        in this service's backlog (a client may rename it as soon as the turn is
        accepted)."""
        result = await attempt()
        if result is NOT_FOUND and await self._barrier.wait(poll_seconds=COMMAND_POLL_SECONDS):
            return await attempt()
        return result

    async def _update(self, command: UpdateConversation) -> ConversationChanged | Refused:
        async with self._store.session() as session, session.begin():
            row = await session.scalar(
                select(ConversationRow)
                .where(owned(command.user_id, command.conversation_id))
                .with_for_update()
            )
            if row is None:
                return NOT_FOUND
            changes, fields = command.changes, command.changed_fields
            changed = bool(fields & _SETTING_FIELDS)
            if "active_message_id" in fields:
                if changes.active_message_id is None:
                    return Refused(
                        code="invalid_request",
                        message="active_message_id cannot be null",
                        field="active_message_id",
                    )
                if not await session.scalar(
                    select(col(MessageRow.id)).where(
                        col(MessageRow.id) == changes.active_message_id,
                        col(MessageRow.conversation_id) == row.id,
                    )
                ):
                    return Refused(
                        code="message_not_found",
                        message="active_message_id is not a message of this conversation",
                        field="active_message_id",
                    )
                row.active_message_id, changed = changes.active_message_id, True
            if "title" in fields and changes.title is not None:
                row.title, row.title_source, changed = changes.title, "user", True
            elif command.generated_title and row.title_source == "message":
                row.title, row.title_source, changed = command.generated_title, "generated", True
            if not changed:
                return ConversationChanged(conversation=conversation_view(row))
            for name in fields & _SETTING_FIELDS:
                setattr(row, name, getattr(changes, name))
            row.revision += 1
            row.updated_at = utc_now()
            session.add(row)
            await session.flush()  # a row the database refuses never becomes an event
            event = self._updated_event(row)
            await publish_event(self._broker, event)
        self.own_events.committed(event.event_id)
        return ConversationChanged(conversation=conversation_view(row))

    async def _generated_title(
        self, command: UpdateConversation, title: str
    ) -> ConversationChanged | None:
        """A new conversation's automatic title in one statement (one per new conversation).

        None if it did not apply (no such conversation, or it has a title that is not
        the first words any more): `update` then tells which.
        """
        parameters = {
            "conversation": command.conversation_id,
            "owner": command.user_id,
            "generated_title": title,
            "now": utc_now(),
        }
        async with self._store.session() as session, session.begin():
            row = await session.scalar(_APPLY_GENERATED_TITLE, parameters)
            if row is None:
                return None
            event = self._updated_event(row)
            await publish_event(self._broker, event)
        self.own_events.committed(event.event_id)
        return ConversationChanged(conversation=conversation_view(row))

    @staticmethod
    def _updated_event(row: ConversationRow) -> ConversationUpdated:
        return ConversationUpdated(
            # Random: a retry after an unanswered PubAck must not be dropped as a duplicate
            # of an event the stream already holds; `revision` orders them.
            event_id=uuid4(),
            user_id=row.user_id,
            conversation_id=row.id,
            revision=row.revision,
            title=row.title,
            title_source=row.title_source,
            settings=settings_of(row),
            active_message_id=row.active_message_id,
            updated_at=row.updated_at,
        )

    async def _delete(self, command: DeleteConversation) -> ConversationRemoved | Refused:
        async with self._store.session() as session, session.begin():
            row = await session.scalar(
                select(ConversationRow)
                .where(owned(command.user_id, command.conversation_id))
                .with_for_update()
            )
            if row is None:
                return NOT_FOUND
            row.deleted_at = utc_now()
            session.add(row)
            await session.flush()
            event = ConversationDeleted(
                event_id=derived_id(row.id, subjects.CONVERSATION_DELETED),
                user_id=row.user_id,
                conversation_id=row.id,
                deleted_at=row.deleted_at,
            )
            await publish_event(self._broker, event)
        self.own_events.committed(event.event_id)
        return ConversationRemoved(conversation_id=row.id, deleted_at=row.deleted_at)

    async def set_preferences(self, user_id: str, preferences: Preferences) -> Preferences:
        """Replace the user's preferences."""
        values = preferences.model_dump() | {"updated_at": utc_now()}
        async with self._store.session() as session, session.begin():
            await session.execute(
                insert(PreferencesRow)
                .values(user_id=user_id, **values)
                .on_conflict_do_update(index_elements=["user_id"], set_=values)
            )
            # Under the row lock, so concurrent changes reach the bucket in commit order;
            # before the answer, as the next new conversation reads the bucket.
            await self._preferences.put(user_id, preferences)
        return preferences
