"""Anthropic Messages API, streamed, with the system prompt marked for prompt caching."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import anthropic
from anthropic import AsyncAnthropic, omit
from anthropic.types import (
    MessageParam,
    RawContentBlockDeltaEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextBlockParam,
)
from chatbus_contracts.common import FinishReason, TokenUsage

from .base import CompletionRequest, Finished, ProviderError, StreamEvent, TextDelta, retry_after

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# `error.type` of an `error` event sent mid-stream (the HTTP status is then 200).
_STREAM_ERROR_TYPES: dict[str, tuple[str, bool]] = {
    "overloaded_error": ("provider_unavailable", True),
    "api_error": ("provider_unavailable", True),
    "timeout_error": ("provider_unavailable", True),
    "rate_limit_error": ("rate_limited", True),
}


class _Usage:
    """Usage as it accumulates: `message_start` has the input side, `message_delta` the rest."""

    def __init__(self) -> None:
        self.input = 0
        self.cache_read = 0
        self.cache_creation = 0
        self.output = 0

    def update(self, raw: Any) -> None:
        # Counts are cumulative; a field the event leaves out (None) keeps its value.
        self.input = _pick(raw.input_tokens, self.input)
        self.cache_read = _pick(raw.cache_read_input_tokens, self.cache_read)
        self.cache_creation = _pick(raw.cache_creation_input_tokens, self.cache_creation)
        self.output = _pick(raw.output_tokens, self.output)

    def tokens(self, *, estimated_output: int | None = None) -> TokenUsage:
        """Anthropic's `input_tokens` excludes cache reads and writes; ours includes them."""
        output = self.output if estimated_output is None else max(self.output, estimated_output)
        return TokenUsage(
            prompt_tokens=self.input + self.cache_read + self.cache_creation,
            completion_tokens=output,
            cached_tokens=self.cache_read,
            cache_write_tokens=self.cache_creation,
            estimated=estimated_output is not None,
        )


def _pick(value: int | None, current: int) -> int:
    return current if value is None else value


def _system_blocks(request: CompletionRequest) -> list[TextBlockParam]:
    blocks: list[TextBlockParam] = [
        {"type": "text", "text": m.content} for m in request.messages if m.role == "system"
    ]
    if blocks:
        # One breakpoint after the whole system prompt caches it as a prefix.
        blocks[-1]["cache_control"] = {"type": "ephemeral"}
    return blocks


def _messages(request: CompletionRequest) -> list[MessageParam]:
    return [
        cast("MessageParam", {"role": m.role, "content": m.content})
        for m in request.messages
        if m.role != "system"
    ]


def _status_error(error: anthropic.APIStatusError) -> ProviderError:
    status, message = error.status_code, str(error)
    if status == 429:
        return ProviderError("rate_limited", message, retryable=True)
    if status in (401, 403):
        return ProviderError("auth_failed", message)
    if status in (400, 404, 413, 422):
        lowered = message.lower()
        too_long = "prompt is too long" in lowered or "context window" in lowered
        return ProviderError("context_too_long" if too_long else "invalid_request", message)
    if status == 408 or status >= 500:  # includes 529 overloaded
        return ProviderError("provider_unavailable", message, retryable=True)
    code, retryable = _STREAM_ERROR_TYPES.get(error.type or "", ("provider_error", False))
    return ProviderError(code, message, retryable=retryable)


def _provider_error(error: anthropic.AnthropicError) -> ProviderError:
    if isinstance(error, anthropic.APIStatusError):
        mapped = _status_error(error)
        mapped.retry_after_seconds = retry_after(error.response.headers)
        return mapped
    if isinstance(error, anthropic.APIConnectionError):
        return ProviderError("provider_unavailable", str(error), retryable=True)
    return ProviderError("provider_error", str(error))


def _broken_stream(detail: str, started: bool) -> ProviderError:
    """A stream that broke: retryable only if nothing was yielded yet."""
    if started:
        return ProviderError("provider_error", detail)
    return ProviderError("provider_unavailable", detail, retryable=True)


class AnthropicProvider:
    """Streams `/v1/messages`; `max_tokens` is required there, so a default fills in.

    `request.temperature` is not sent: the API version that SDK 2.x speaks (2026-10-21)
    refuses every sampling parameter with a 400, and the SDK no longer has them.
    """

    name = "anthropic"
    supports_tools = False

    def __init__(self, client: AsyncAnthropic, default_max_tokens: int = 1024) -> None:
        self._client = client
        self._default_max_tokens = default_max_tokens

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream one completion; errors after the first token are never retryable."""
        system = _system_blocks(request)
        usage = _Usage()
        model = request.model
        stop_reason: str | None = None
        usage_seen = finished = False
        deltas = 0
        try:
            stream = await self._client.messages.create(
                model=request.model,
                messages=_messages(request),
                system=system or omit,
                max_tokens=request.max_tokens or self._default_max_tokens,
                stream=True,
            )
            async with stream:
                async for event in stream:
                    if isinstance(event, RawContentBlockDeltaEvent):
                        if event.delta.type == "text_delta" and event.delta.text:
                            deltas += 1
                            yield TextDelta(event.delta.text)
                    elif isinstance(event, RawMessageStartEvent):
                        model = event.message.model or model
                        usage.update(event.message.usage)
                        usage_seen = True
                    elif isinstance(event, RawMessageDeltaEvent):
                        stop_reason = event.delta.stop_reason or stop_reason
                        usage.update(event.usage)
                    elif isinstance(event, RawMessageStopEvent):
                        finished = True
        except anthropic.AnthropicError as error:
            mapped = _provider_error(error)
            if deltas:
                mapped.retryable = False  # text went out; a retry would repeat it
                mapped.partial_usage = usage.tokens(estimated_output=deltas) if usage_seen else None
            raise mapped from error
        except Exception as error:  # a dropped connection or an event that is not JSON
            detail = f"the stream broke: {type(error).__name__}: {error}"
            mapped = _broken_stream(detail, deltas > 0)
            if deltas and usage_seen:
                mapped.partial_usage = usage.tokens(estimated_output=deltas)
            raise mapped from error
        if not finished or stop_reason is None:
            raise _broken_stream("the stream ended before message_stop", deltas > 0)
        yield Finished(
            usage=usage.tokens(),
            finish_reason=_FINISH_REASONS.get(stop_reason, "stop"),
            model=model,
        )
