"""The one small interface every provider adapter implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from chatbus_contracts.common import FinishReason, TokenUsage


@dataclass(frozen=True)
class PromptMessage:
    """One message of the prompt sent upstream."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class CompletionRequest:
    """What an adapter needs for one streamed completion."""

    model: str
    messages: list[PromptMessage]
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The stream ended; `usage` is what the provider reported."""

    usage: TokenUsage
    finish_reason: FinishReason
    model: str


StreamEvent = TextDelta | Finished


@dataclass
class ProviderError(Exception):
    """An upstream failure, mapped to a stable code."""

    code: str
    message: str
    retryable: bool = False
    partial_usage: TokenUsage | None = field(default=None)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ChatProvider(Protocol):
    """A provider adapter: streams one completion as `TextDelta`s then one `Finished`."""

    name: str

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream the completion; raise `ProviderError` on an upstream failure."""
        ...
