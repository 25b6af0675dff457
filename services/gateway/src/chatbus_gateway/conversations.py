"""Questions to the conversation service over NATS request/reply."""

from __future__ import annotations

from uuid import UUID

from chatbus_contracts import subjects
from chatbus_contracts.queries import (
    ConversationDetail,
    ConversationFound,
    ConversationPage,
    GetConversation,
    ListConversations,
)
from faststream.nats import NatsBroker


class ConversationClient:
    """Typed request/reply calls; the user id always comes from the verified token."""

    def __init__(self, broker: NatsBroker, timeout_seconds: float) -> None:
        self._broker = broker
        self._timeout = timeout_seconds

    async def get(
        self, user_id: str, conversation_id: UUID, *, include_messages: bool = True
    ) -> ConversationDetail | None:
        """The caller's conversation, or None (missing and foreign ids look the same)."""
        query = GetConversation(
            user_id=user_id, conversation_id=conversation_id, include_messages=include_messages
        )
        response = await self._broker.request(
            query, subjects.CONVERSATION_QUERY_GET, timeout=self._timeout
        )
        return ConversationFound.model_validate_json(response.body).conversation

    async def list(self, user_id: str, limit: int, cursor: str | None) -> ConversationPage:
        """One page of the caller's conversations, newest first."""
        query = ListConversations(user_id=user_id, limit=limit, cursor=cursor)
        response = await self._broker.request(
            query, subjects.CONVERSATION_QUERY_LIST, timeout=self._timeout
        )
        return ConversationPage.model_validate_json(response.body)
