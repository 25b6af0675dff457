"""Commands sent over NATS, named in the imperative."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from .common import Model, utc_now


class FunctionCall(Model):
    """The function a tool call invokes; `arguments` is JSON text, as the model wrote it."""

    name: str
    arguments: str


class ToolCall(Model):
    """One function call the assistant asked for (OpenAI's `tool_calls` item)."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class PriorMessage(Model):
    """A message of a stateless turn's prompt that is not stored (OpenAI-compatible API).

    An assistant message may carry `tool_calls` (its `content` then often empty); a
    `tool` message is the result of the call named by `tool_call_id`.
    """

    role: Literal["user", "assistant", "tool"]
    content: str
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class ToolUse(Model):
    """Function calling of a stateless turn (OpenAI-compatible API; openai provider only).

    The prompt is `prior_messages`, the user message `content`, then `after_content`:
    the assistant's tool calls and their results when the request ends with them.
    """

    tools: list[dict[str, Any]] | None = Field(
        default=None, description="Function tool definitions, passed upstream as they came."
    )
    tool_choice: str | dict[str, Any] | None = None
    after_content: list[PriorMessage] = Field(default_factory=list)


class GenerateReply(Model):
    """An accepted chat turn: gateway -> inference over the CHAT_REQUESTS work queue.

    The gateway has already checked the caller owns `conversation_id`. Ids of both
    messages are fixed here, so every retry of the turn writes to the same rows.
    """

    request_id: UUID
    client_message_id: str = Field(description="The client's `chat.send` id.")
    user_id: str
    user_role: str = Field(default="user", description="Decides the default budget.")
    conversation_id: UUID
    new_conversation: bool
    user_message_id: UUID = Field(
        description="The new user message, or the one answered again by a regenerate."
    )
    assistant_message_id: UUID
    content: str = Field(description="Empty for a regenerate.")
    parent_message_id: UUID | None = Field(
        default=None, description="Branch after this message instead of the active one."
    )
    edit_message_id: UUID | None = Field(
        default=None, description="The user message this one edits (becomes its sibling)."
    )
    regenerate: bool = Field(
        default=False, description="Answer `user_message_id` again; no new user message."
    )
    prior_messages: list[PriorMessage] | None = Field(
        default=None,
        description="A stateless turn's earlier messages, used instead of stored history.",
    )
    tool_use: ToolUse | None = Field(
        default=None, description="A stateless turn's tools and tool messages, if any."
    )
    model: str | None = None
    provider: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    memory: bool | None = None
    reply_subject: str = Field(description="Where the chunks go: chat.chunks.<gateway>.<request>.")
    accepted_at: datetime = Field(default_factory=utc_now)


class StopGeneration(Model):
    """Stop one generation (gateway -> the inference replica that owns it)."""

    request_id: UUID
    user_id: str


class StopAcknowledged(Model):
    """Reply of the inference replica that owns a request to `StopGeneration`."""

    request_id: UUID


class TurnRecord(Model):
    """What the gateway remembers of an accepted turn (bucket `chat_turns`, key = request id)."""

    request_id: UUID
    user_id: str
    client_message_id: str
    conversation_id: UUID
    user_message_id: UUID
    assistant_message_id: UUID
    accepted_at: datetime = Field(default_factory=utc_now)
