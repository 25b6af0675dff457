"""Domain events on the EVENTS stream, one model per subject, named in the past tense.

Every event carries `event_id` (also sent as `Nats-Msg-Id`, so JetStream drops a
republished duplicate), `user_id` (the tenant), a schema `version` and `occurred_at`.
Consumers are idempotent on their own unique keys because delivery is at-least-once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from . import subjects
from .common import (
    ChatSettings,
    FinishReason,
    Model,
    Role,
    TokenUsage,
    Usd,
    utc_now,
)


class Event(Model):
    """Fields every event has."""

    subject: ClassVar[str]

    event_id: UUID
    version: int = 1
    user_id: str
    occurred_at: datetime = Field(default_factory=utc_now)


class MessageCreated(Event):
    """A user or assistant message now exists (the assistant one with its usage)."""

    subject: ClassVar[str] = subjects.MESSAGE_CREATED

    message_id: UUID
    conversation_id: UUID
    request_id: UUID
    role: Role
    content: str
    parent_id: UUID | None = None
    created_at: datetime
    model: str | None = None
    provider: str | None = None
    usage: TokenUsage | None = None
    cost_usd: Decimal | None = None
    finish_reason: FinishReason | None = None
    latency_ms: int | None = None
    context_message_ids: list[UUID] = Field(
        default_factory=list,
        description="Earlier messages retrieval memory added to the prompt of this answer.",
    )


class MessageFailed(Event):
    """A turn ended without a complete assistant message."""

    subject: ClassVar[str] = subjects.MESSAGE_FAILED

    message_id: UUID
    conversation_id: UUID
    request_id: UUID
    code: str
    error: str
    partial_content: str = ""
    usage: TokenUsage | None = None
    model: str | None = None
    provider: str | None = None


TitleSource = Literal["message", "generated", "user"]


class ConversationCreated(Event):
    """A conversation was started, by a user's first message or by `POST /v1/conversations`.

    `settings` are the conversation's, with the user's preferences already filled in
    where the request set none (its publisher does that; it is stored as it is).
    """

    subject: ClassVar[str] = subjects.CONVERSATION_CREATED

    conversation_id: UUID
    title: str
    title_source: TitleSource = "message"
    settings: ChatSettings = ChatSettings()
    created_at: datetime


class ConversationUpdated(Event):
    """A conversation's title, settings or active branch changed; the full new state.

    `revision` grows by one with every change, so a consumer keeps the newest state
    whatever order it sees the events in.
    """

    subject: ClassVar[str] = subjects.CONVERSATION_UPDATED

    conversation_id: UUID
    revision: int
    title: str
    title_source: TitleSource
    settings: ChatSettings
    active_message_id: UUID | None
    updated_at: datetime


class ConversationDeleted(Event):
    """A conversation was deleted (soft): it disappears from every list, search and index."""

    subject: ClassVar[str] = subjects.CONVERSATION_DELETED

    conversation_id: UUID
    deleted_at: datetime


class UsageRecorded(Event):
    """One billed provider call, priced from the genai-prices table."""

    subject: ClassVar[str] = subjects.USAGE_RECORDED

    request_id: UUID
    conversation_id: UUID | None
    message_id: UUID | None
    kind: Literal["chat", "title", "embedding"] = "chat"
    status: Literal["completed", "stopped", "failed"] = "completed"
    provider: str
    model: str
    usage: TokenUsage
    cost_usd: Decimal | None = Field(
        default=None, description="None when the model is not in the price table."
    )
    price_source: str | None = Field(
        default=None, description="Which price table priced it, e.g. 'genai-prices 0.2.3'."
    )
    latency_ms: int | None = None
    finish_reason: FinishReason | None = None


class BudgetExceeded(Event):
    """A turn refused because its worst-case cost would take the user over their budget."""

    subject: ClassVar[str] = subjects.USAGE_BUDGET_EXCEEDED

    request_id: UUID
    month: str = Field(description="YYYY-MM (UTC).")
    budget_usd: Usd
    spent_usd: Usd
    reserved_usd: Usd = Field(description="Held by the user's other running turns.")
    needed_usd: Usd = Field(description="This turn's worst-case cost.")
