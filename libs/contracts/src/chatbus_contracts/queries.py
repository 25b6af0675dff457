"""Queries answered over core NATS request/reply, and their replies.

The user id in a query always comes from the caller's verified token, never from
a client payload: the owner filters every query by it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import Field

from .common import ChatSettings, FinishReason, Model, Role, TokenUsage, Usd


class ListConversations(Model):
    """Newest first; `cursor` is the opaque `next_cursor` of the previous page."""

    user_id: str
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = None


class GetConversation(Model):
    """One conversation with its messages."""

    user_id: str
    conversation_id: UUID
    include_messages: bool = True


class GetHistory(Model):
    """The branch a new turn builds on, root first (read-your-writes, see docs/decisions.md).

    The branch ends at `leaf_id` (included), or at the conversation's active message
    when it is None.
    A new conversation has no messages yet: its reply carries the user's preferences.
    """

    user_id: str
    conversation_id: UUID
    new_conversation: bool = False
    leaf_id: UUID | None = None
    exclude_request_id: UUID | None = Field(
        default=None, description="Leave out messages of this request (a retried turn)."
    )


class MessageView(Model):
    """A stored message as clients and inference see it."""

    id: UUID
    conversation_id: UUID
    request_id: UUID
    role: Role
    content: str
    parent_id: UUID | None
    created_at: datetime
    model: str | None = None
    provider: str | None = None
    usage: TokenUsage | None = None
    cost_usd: Usd | None = None
    finish_reason: FinishReason | None = None
    latency_ms: int | None = None
    context_message_ids: list[UUID] = Field(
        default_factory=list, description="Messages retrieval memory added to its prompt."
    )


class ConversationView(Model):
    """A conversation without its messages, with its settings and counters."""

    id: UUID
    title: str
    created_at: datetime
    updated_at: datetime
    settings: ChatSettings = ChatSettings()
    active_message_id: UUID | None = Field(
        default=None, description="The newest message of the active branch."
    )
    message_count: int = 0
    total_tokens: int = 0
    cost_usd: Usd = Decimal(0)


class ConversationDetail(ConversationView):
    """A conversation with all its messages, oldest first.

    Messages form a tree by `parent_id` (edits and regenerations are siblings); the
    active branch is the path from the root to `active_message_id`.
    """

    messages: list[MessageView]


class ConversationPage(Model):
    """One page of `ListConversations`."""

    items: list[ConversationView]
    next_cursor: str | None


class ConversationFound(Model):
    """Reply to `GetConversation`: `conversation` is None for a missing or foreign id."""

    conversation: ConversationDetail | None


class GetMessage(Model):
    """One message of the user's, read after every `message.created` published so far.

    Inference asks it for a retried turn's answer: a try that died after storing the
    answer but before ending the turn leaves the answer to be relayed, not written again.
    """

    user_id: str
    message_id: UUID


class MessageFound(Model):
    """Reply to `GetMessage`: `message` is None for a missing or foreign id."""

    message: MessageView | None
    caught_up: bool = Field(
        default=True, description="False when the read barrier timed out (it may be stored yet)."
    )


class HistoryReply(Model):
    """Reply to `GetHistory`.

    `found` is False for a missing, deleted or foreign conversation, and for a
    `leaf_id` that is not a message of it. `settings` are the conversation's own,
    with the user's preferences filled in where it sets nothing.
    """

    found: bool
    messages: list[MessageView]
    settings: ChatSettings = ChatSettings()
    untitled: bool = Field(
        default=False, description="The title is still automatic: a generated one may replace it."
    )
    caught_up: bool = Field(
        default=True, description="False when the read barrier timed out (history may lag)."
    )

    @classmethod
    def new_conversation(cls, settings: ChatSettings) -> HistoryReply:
        """A conversation a turn starts: no messages, the user's preferred settings."""
        return cls(found=True, messages=[], settings=settings, untitled=True)


class ListModels(Model):
    """Ask an inference replica for the model catalogue."""


class ModelInfo(Model):
    """One model a turn may name."""

    id: str
    provider: str
    upstream: str
    context_window: int
    max_output_tokens: int
    fallbacks: list[str]


class ModelList(Model):
    """Reply to `ListModels`: the models whose provider is configured, and the default."""

    models: list[ModelInfo]
    default_model: str
