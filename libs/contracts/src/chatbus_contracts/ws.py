"""WebSocket protocol v1 (`/v1/ws`): JSON text frames, each with a `type`.

Client -> server: `auth`, `chat.send`, `chat.regenerate`, `chat.stop`, `chat.resume`,
`ping`.
Server -> client: `chat.accepted`, `chat.delta`, `chat.restart`, `chat.end`,
`chat.stopped`, `chat.error`, `pong`, and the live `conversation.created|updated|deleted`.
docs/protocol.md describes each with an example.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter, model_validator

from .common import ChatSettings, FinishReason, Model, Text, TokenUsage
from .queries import MessageView

PROTOCOL_VERSION = 1


# --- client -> server ------------------------------------------------------------


class AuthFrame(Model):
    """First frame of a browser client that cannot set the Authorization header."""

    type: Literal["auth"] = "auth"
    token: str


class TurnOverrides(Model):
    """Settings for this one turn, over the conversation's own."""

    model: Text | None = Field(default=None, max_length=200)
    provider: Text | None = Field(default=None, max_length=100)
    system: Text | None = Field(default=None, max_length=32_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    memory: bool | None = Field(
        default=None, description="Retrieval memory for this turn (see ChatSettings.memory)."
    )


class ChatSend(TurnOverrides):
    """Start a turn. `id` is the client's idempotency key.

    The new user message follows the conversation's active message, unless
    `parent_message_id` names another one (a branch), or `edit_message_id` names a
    user message it replaces (a sibling of it: the edit of that message).
    """

    type: Literal["chat.send"] = "chat.send"
    id: str = Field(min_length=1, max_length=128)
    conversation_id: UUID | None = None
    content: Text = Field(min_length=1)
    parent_message_id: UUID | None = None
    edit_message_id: UUID | None = None

    @model_validator(mode="after")
    def _one_anchor(self) -> ChatSend:
        if self.parent_message_id and self.edit_message_id:
            raise ValueError("give parent_message_id or edit_message_id, not both")
        if (self.parent_message_id or self.edit_message_id) and not self.conversation_id:
            raise ValueError("parent_message_id and edit_message_id need a conversation_id")
        return self


class ChatRegenerate(TurnOverrides):
    """Answer a user message again; the new answer is a sibling of the earlier ones.

    `message_id` is the user message, or an assistant message (then its question is
    answered again).
    """

    type: Literal["chat.regenerate"] = "chat.regenerate"
    id: str = Field(min_length=1, max_length=128)
    conversation_id: UUID
    message_id: UUID


class ChatStop(Model):
    """Stop a generation; the partial answer is kept and billed."""

    type: Literal["chat.stop"] = "chat.stop"
    request_id: UUID


class ChatResume(Model):
    """Deliver a request's chunks after `after_seq` (0 = from the start), then the tail."""

    type: Literal["chat.resume"] = "chat.resume"
    request_id: UUID
    after_seq: int = Field(default=0, ge=0)


class Ping(Model):
    """Keep-alive; answered by `pong`."""

    type: Literal["ping"] = "ping"


ClientFrame = Annotated[
    AuthFrame | ChatSend | ChatRegenerate | ChatStop | ChatResume | Ping,
    Field(discriminator="type"),
]
CLIENT_FRAME_ADAPTER: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
CLIENT_FRAME_TYPES: frozenset[str] = frozenset(
    {"auth", "chat.send", "chat.regenerate", "chat.stop", "chat.resume", "ping"}
)


# --- server -> client ------------------------------------------------------------


class ChatAccepted(Model):
    """The turn is durable (JetStream acknowledged it); ids of everything it will create."""

    type: Literal["chat.accepted"] = "chat.accepted"
    id: str
    request_id: UUID
    conversation_id: UUID
    user_message_id: UUID
    assistant_message_id: UUID


class ChatDelta(Model):
    """A piece of the answer; `seq` runs 1, 2, 3 ... without gaps."""

    type: Literal["chat.delta"] = "chat.delta"
    request_id: UUID
    seq: int
    text: str


class ChatEnd(Model):
    """The answer is complete and stored."""

    type: Literal["chat.end"] = "chat.end"
    request_id: UUID
    message_id: UUID
    finish_reason: FinishReason
    usage: TokenUsage
    cost_usd: str | None = Field(description="Decimal string; null when the model has no price.")
    model: str
    provider: str
    latency_ms: int


class ChatStopped(Model):
    """The generation was stopped by `chat.stop`."""

    type: Literal["chat.stopped"] = "chat.stopped"
    request_id: UUID
    message_id: UUID


class ChatRestart(Model):
    """The answer starts over: drop the text of the turn so far; deltas follow from `seq`.

    Sent when the inference replica generating the turn was lost (or handed it back
    while shutting down) and another one generates it again. `attempt` counts the
    tries (2, 3, ...); a restart whose `attempt` you already applied is a repeat (after a
    resume or a resend) and changes nothing.
    """

    type: Literal["chat.restart"] = "chat.restart"
    request_id: UUID
    seq: int
    attempt: int


class ChatError(Model):
    """Something went wrong with one frame or one turn; the socket stays usable."""

    type: Literal["chat.error"] = "chat.error"
    id: str | None = None
    request_id: UUID | None = None
    code: str
    message: str
    retryable: bool = False
    retry_after_ms: int | None = Field(
        default=None, description="With `rate_limited`: when the request would be admitted."
    )


class Pong(Model):
    """Answer to `ping`."""

    type: Literal["pong"] = "pong"


class ChatMessage(Model):
    """Answer to `chat.resume` once the turn's chunks have expired: the stored answer."""

    type: Literal["chat.message"] = "chat.message"
    request_id: UUID
    message: MessageView


class ConversationCreatedFrame(Model):
    """Live: the user started a conversation (on any socket, or by REST)."""

    type: Literal["conversation.created"] = "conversation.created"
    conversation_id: UUID
    title: str
    settings: ChatSettings
    created_at: datetime


class ConversationUpdatedFrame(Model):
    """Live: a conversation was renamed, titled automatically, or its settings changed."""

    type: Literal["conversation.updated"] = "conversation.updated"
    conversation_id: UUID
    title: str
    settings: ChatSettings
    active_message_id: UUID | None
    updated_at: datetime


class ConversationDeletedFrame(Model):
    """Live: a conversation was deleted."""

    type: Literal["conversation.deleted"] = "conversation.deleted"
    conversation_id: UUID


ServerFrame = Annotated[
    ChatAccepted
    | ChatDelta
    | ChatRestart
    | ChatEnd
    | ChatStopped
    | ChatError
    | Pong
    | ChatMessage
    | ConversationCreatedFrame
    | ConversationUpdatedFrame
    | ConversationDeletedFrame,
    Field(discriminator="type"),
]
SERVER_FRAME_ADAPTER: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)
