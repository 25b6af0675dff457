"""Reply chunks: inference -> gateway on `chat.chunks.<gateway>.<request>`.

`seq` numbers every chunk of a request from 1 without gaps; deltas come first and
exactly one terminal chunk (`end`, `error` or `stopped`) closes the stream.

`attempt` is the delivery of the request that produced the chunk (JetStream's
`num_delivered`). A request whose replica died or handed it back is run again by
another one: that attempt opens with a `restart` chunk whose `seq` follows the last
chunk stored so far, and numbering goes on from there. Readers drop the chunks of an
attempt once a newer one has begun (a dead replica's tail, a zombie's late chunks).
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
    attempt: int = Field(default=1, ge=1)
    text: str


class EndChunk(Model):
    """The generation finished; the assistant message has been published."""

    kind: Literal["end"] = "end"
    request_id: UUID
    seq: int = Field(ge=1)
    attempt: int = Field(default=1, ge=1)
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
    attempt: int = Field(default=1, ge=1)
    code: str
    message: str
    retryable: bool = False


class StoppedChunk(Model):
    """The generation was stopped by `chat.stop`; the partial message has been published."""

    kind: Literal["stopped"] = "stopped"
    request_id: UUID
    seq: int = Field(ge=1)
    attempt: int = Field(default=1, ge=1)
    message_id: UUID


class RestartChunk(Model):
    """The first chunk of a request's attempt after the first: discard the text so far.

    The earlier attempt's replica died, or handed the request back while shutting down;
    the answer is generated again from the start.
    """

    kind: Literal["restart"] = "restart"
    request_id: UUID
    seq: int = Field(ge=1)
    attempt: int = Field(ge=2)


ReplyChunk = Annotated[
    DeltaChunk | EndChunk | ErrorChunk | StoppedChunk | RestartChunk,
    Field(discriminator="kind"),
]
REPLY_CHUNK_ADAPTER: TypeAdapter[ReplyChunk] = TypeAdapter(ReplyChunk)


def is_terminal(chunk: ReplyChunk) -> bool:
    """Whether `chunk` ends its request's stream (`end`, `error` or `stopped`)."""
    return isinstance(chunk, EndChunk | ErrorChunk | StoppedChunk)


def stop_marker_key(request_id: UUID) -> str:
    """Key in the `chat_turns` bucket asking for a stop of a turn that is not streaming yet.

    The gateway writes it when no replica answered a `chat.stop` (the request is still
    queued, or being picked up); inference checks it before it starts generating.
    """
    return f"{request_id}.stop"
