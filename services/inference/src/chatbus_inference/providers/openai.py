"""OpenAI chat completions, and any OpenAI-compatible server (Ollama, vLLM) by base URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import openai
from chatbus_contracts.common import FinishReason, TokenUsage
from openai import AsyncOpenAI, omit
from openai.types.chat import ChatCompletionMessageParam

from .base import CompletionRequest, Finished, ProviderError, StreamEvent, TextDelta

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}


def _usage(raw: Any) -> TokenUsage:
    details = getattr(raw, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return TokenUsage(
        prompt_tokens=raw.prompt_tokens or 0,
        completion_tokens=raw.completion_tokens or 0,
        cached_tokens=cached,
    )


def _provider_error(error: openai.OpenAIError) -> ProviderError:
    if isinstance(error, openai.RateLimitError):
        return ProviderError("rate_limited", str(error), retryable=True)
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return ProviderError("auth_failed", str(error))
    if isinstance(error, openai.BadRequestError):
        code = "context_too_long" if "context" in str(error).lower() else "invalid_request"
        return ProviderError(code, str(error))
    if isinstance(error, openai.APIStatusError | openai.APIConnectionError):
        return ProviderError("provider_unavailable", str(error), retryable=True)
    return ProviderError("provider_error", str(error))


class OpenAIProvider:
    """Streams with `stream_options.include_usage`, so usage always arrives."""

    name = "openai"

    def __init__(self, client: AsyncOpenAI) -> None:
        self._client = client

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream one completion from the OpenAI API (or a compatible server)."""
        messages = cast(
            "list[ChatCompletionMessageParam]",
            [{"role": m.role, "content": m.content} for m in request.messages],
        )
        finish_reason: FinishReason = "stop"
        usage: TokenUsage | None = None
        model = request.model
        try:
            stream = await self._client.chat.completions.create(
                model=request.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                temperature=omit if request.temperature is None else request.temperature,
                max_tokens=omit if request.max_tokens is None else request.max_tokens,
            )
            async with stream:
                async for chunk in stream:
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = _usage(chunk.usage)
                    for choice in chunk.choices:
                        if choice.delta.content:
                            yield TextDelta(choice.delta.content)
                        if choice.finish_reason:
                            finish_reason = _FINISH_REASONS.get(choice.finish_reason, "stop")
        except openai.OpenAIError as error:
            raise _provider_error(error) from error
        if usage is None:
            raise ProviderError("provider_error", "the stream ended without usage", retryable=True)
        yield Finished(usage=usage, finish_reason=finish_reason, model=model)
