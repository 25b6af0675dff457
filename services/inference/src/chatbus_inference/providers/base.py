"""The one small interface every provider adapter implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from chatbus_contracts.commands import ToolCall
from chatbus_contracts.common import FinishReason, TokenUsage


@dataclass(frozen=True)
class PromptMessage:
    """One message of the prompt sent upstream.

    Only stateless turns of the OpenAI-compatible API have `tool_calls` (an assistant
    message) or `tool_call_id` (a `tool` message, the result of that call).
    """

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class CompletionRequest:
    """What an adapter needs for one streamed completion.

    `tools` and `tool_choice` reach only adapters with `supports_tools`; the turn
    refuses them for the others.
    """

    model: str
    messages: list[PromptMessage]
    temperature: float | None = None
    max_tokens: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The stream ended; `usage` is what the provider reported.

    `tool_calls` are the complete function calls of the answer: adapters gather their
    streamed pieces and report them here, once.
    """

    usage: TokenUsage
    finish_reason: FinishReason
    model: str
    tool_calls: tuple[ToolCall, ...] = ()


StreamEvent = TextDelta | Finished


@dataclass
class ProviderError(Exception):
    """An upstream failure, mapped to a stable code."""

    code: str
    message: str
    retryable: bool = False
    partial_usage: TokenUsage | None = field(default=None)
    # The provider's `retry-after`, when its answer had one (`retry_after` reads it).
    retry_after_seconds: float | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """An HTTP answer's `retry-after` in seconds; None without one, or for an HTTP date
    (chatbus' own backoff applies then)."""
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class ChatProvider(Protocol):
    """A provider adapter: streams one completion as `TextDelta`s then one `Finished`.

    `supports_tools`: the adapter sends `tools`, tool calls and tool results upstream.
    """

    name: str
    supports_tools: bool

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream the completion; raise `ProviderError` on an upstream failure."""
        ...


@runtime_checkable
class PooledProvider(Protocol):
    """An adapter that holds connections of its own, closed when the service stops."""

    async def aclose(self) -> None:
        """Close the pooled connections."""
        ...
