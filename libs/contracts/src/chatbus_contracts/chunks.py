"""Reply chunks: inference -> gateway on `chat.chunks.<gateway>.<request>`.

`seq` numbers every chunk of a request from 1 without gaps; deltas come first and
exactly one terminal chunk (`end`, `error` or `stopped`) closes the stream.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter

from .commands import ToolCall
from .common import FinishReason, Model, TokenUsage


class DeltaChunk(Model):
    """A piece of the assistant's text."""

    kind: Literal["delta"] = "delta"
    request_id: UUID
    seq: int = Field(ge=1)
    text: str


class EndChunk(Model):
    """The generation finished; the assistant message has been published."""

    kind: Literal["end"] = "end"
    request_id: UUID
    seq: int = Field(ge=1)
    message_id: UUID
    finish_reason: FinishReason
    usage: TokenUsage
    cost_usd: Decimal | None
    model: str
    provider: str
    latency_ms: int
    tool_calls: list[ToolCall] | None = Field(
        default=None, description="The function calls asked for (finish_reason `tool_calls`)."
    )


class ErrorChunk(Model):
    """The generation failed; `message.failed` has been published."""

    kind: Literal["error"] = "error"
    request_id: UUID
    seq: int = Field(ge=1)
    code: str
    message: str
    retryable: bool = False


class StoppedChunk(Model):
    """The generation was stopped by `chat.stop`; the partial message has been published."""

    kind: Literal["stopped"] = "stopped"
    request_id: UUID
    seq: int = Field(ge=1)
    message_id: UUID


ReplyChunk = Annotated[
    DeltaChunk | EndChunk | ErrorChunk | StoppedChunk, Field(discriminator="kind")
]
REPLY_CHUNK_ADAPTER: TypeAdapter[ReplyChunk] = TypeAdapter(ReplyChunk)
