"""WebSocket protocol v1 (`/v1/ws`): JSON text frames, each with a `type`.

Client -> server: `auth`, `chat.send`, `chat.stop`, `chat.resume`, `ping`.
Server -> client: `chat.accepted`, `chat.delta`, `chat.end`, `chat.stopped`,
`chat.error`, `pong`. docs/protocol.md describes each with an example.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter

from .common import FinishReason, Model, TokenUsage

PROTOCOL_VERSION = 1


# --- client -> server ------------------------------------------------------------


class AuthFrame(Model):
    """First frame of a browser client that cannot set the Authorization header."""

    type: Literal["auth"] = "auth"
    token: str


class ChatSend(Model):
    """Start a turn. `id` is the client's idempotency key."""

    type: Literal["chat.send"] = "chat.send"
    id: str = Field(min_length=1, max_length=128)
    conversation_id: UUID | None = None
    content: str = Field(min_length=1)
    model: str | None = Field(default=None, max_length=200)
    provider: str | None = Field(default=None, max_length=100)
    system: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)


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
    AuthFrame | ChatSend | ChatStop | ChatResume | Ping, Field(discriminator="type")
]
CLIENT_FRAME_ADAPTER: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
CLIENT_FRAME_TYPES: frozenset[str] = frozenset(
    {"auth", "chat.send", "chat.stop", "chat.resume", "ping"}
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


class ChatError(Model):
    """Something went wrong with one frame or one turn; the socket stays usable."""

    type: Literal["chat.error"] = "chat.error"
    id: str | None = None
    request_id: UUID | None = None
    code: str
    message: str
    retryable: bool = False


class Pong(Model):
    """Answer to `ping`."""

    type: Literal["pong"] = "pong"


ServerFrame = Annotated[
    ChatAccepted | ChatDelta | ChatEnd | ChatStopped | ChatError | Pong,
    Field(discriminator="type"),
]
SERVER_FRAME_ADAPTER: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)
