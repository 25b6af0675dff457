"""Questions and commands to the conversation service over NATS request/reply."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from chatbus_contracts import subjects
from chatbus_contracts.common import ChatSettings, Model
from chatbus_contracts.conversations import (
    ConversationChanged,
    ConversationChanges,
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
from chatbus_contracts.queries import (
    ConversationDetail,
    ConversationFound,
    ConversationPage,
    ConversationView,
    GetConversation,
    ListConversations,
)
from chatbus_runtime import rpc
from faststream.nats import NatsBroker
from pydantic import ValidationError

ReplyT = TypeVar("ReplyT", bound=Model)


class RefusedError(Exception):
    """The conversation service refused; carries its `Refused` answer."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(refused.message)
        self.refused = refused


class ConversationClient:
    """Typed request/reply calls; the user id always comes from the verified token."""

    def __init__(self, broker: NatsBroker, timeout_seconds: float) -> None:
        self._broker = broker
        self._timeout = timeout_seconds

    async def _ask(self, message: Model, subject: str, reply: type[ReplyT]) -> ReplyT:
        body = await rpc.request(self._broker, subject, message, timeout_seconds=self._timeout)
        try:
            return reply.model_validate_json(body)
        except ValidationError:
            raise RefusedError(Refused.model_validate_json(body)) from None

    async def get(
        self, user_id: str, conversation_id: UUID, *, include_messages: bool = True
    ) -> ConversationDetail | None:
        """The caller's conversation, or None (missing, deleted and foreign ids look the same)."""
        query = GetConversation(
            user_id=user_id, conversation_id=conversation_id, include_messages=include_messages
        )
        found = await self._ask(query, subjects.CONVERSATION_QUERY_GET, ConversationFound)
        return found.conversation

    async def page(self, user_id: str, limit: int, cursor: str | None) -> ConversationPage:
        """One page of the caller's conversations, newest first."""
        query = ListConversations(user_id=user_id, limit=limit, cursor=cursor)
        return await self._ask(query, subjects.CONVERSATION_QUERY_LIST, ConversationPage)

    async def create(
        self, user_id: str, title: str | None, settings: ChatSettings
    ) -> ConversationView:
        """A new, empty conversation."""
        command = CreateConversation(user_id=user_id, title=title, settings=settings)
        changed = await self._ask(
            command, subjects.CONVERSATION_COMMAND_CREATE, ConversationChanged
        )
        return changed.conversation

    async def update(
        self, user_id: str, conversation_id: UUID, changes: ConversationChanges
    ) -> ConversationView:
        """Apply the fields `changes` names; `RefusedError` for a missing id."""
        command = UpdateConversation(
            user_id=user_id,
            conversation_id=conversation_id,
            changes=changes,
            changed_fields=frozenset(changes.model_fields_set),
        )
        changed = await self._ask(
            command, subjects.CONVERSATION_COMMAND_UPDATE, ConversationChanged
        )
        return changed.conversation

    async def delete(self, user_id: str, conversation_id: UUID) -> ConversationRemoved:
        """Soft-delete; `RefusedError` for a missing id."""
        command = DeleteConversation(user_id=user_id, conversation_id=conversation_id)
        return await self._ask(command, subjects.CONVERSATION_COMMAND_DELETE, ConversationRemoved)

    async def search(
        self,
        user_id: str,
        query: str,
        limit: int,
        conversation_id: UUID | None,
        include_message_ids: list[UUID],
    ) -> SearchResults:
        """The caller's best keyword matches, and their messages among `include_message_ids`."""
        search = SearchMessages(
            user_id=user_id,
            query=query,
            limit=limit,
            conversation_id=conversation_id,
            include_message_ids=include_message_ids,
        )
        return await self._ask(search, subjects.CONVERSATION_QUERY_SEARCH, SearchResults)

    async def preferences(self, user_id: str) -> Preferences:
        """The caller's preferences."""
        return await self._ask(
            GetPreferences(user_id=user_id), subjects.PREFERENCES_QUERY_GET, Preferences
        )

    async def set_preferences(self, user_id: str, preferences: Preferences) -> Preferences:
        """Replace the caller's preferences."""
        command = SetPreferences(user_id=user_id, preferences=preferences)
        return await self._ask(command, subjects.PREFERENCES_COMMAND_SET, Preferences)
