"""OpenAI chat completions, and any OpenAI-compatible server (Ollama, vLLM) by base URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import openai
from chatbus_contracts.commands import FunctionCall, ToolCall
from chatbus_contracts.common import FinishReason, TokenUsage
from openai import AsyncOpenAI, omit
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionToolChoiceOptionParam,
    ChatCompletionToolUnionParam,
)
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from .base import (
    CompletionRequest,
    Finished,
    PromptMessage,
    ProviderError,
    StreamEvent,
    TextDelta,
)

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


def _message(message: PromptMessage) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [call.model_dump() for call in message.tool_calls]
        wire["content"] = message.content or None
    return wire


class _ToolCalls:
    """Tool calls as their pieces stream in: id and name first, then argument fragments."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, delta: ChoiceDeltaToolCall) -> None:
        call = self._calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
        call["id"] = call["id"] or delta.id or ""
        if delta.function is not None:
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""

    def complete(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(
                # Some compatible servers send no id; the client still needs one to answer.
                id=call["id"] or f"call_{index}",
                function=FunctionCall(name=call["name"], arguments=call["arguments"]),
            )
            for index, call in sorted(self._calls.items())
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
    """Streams with `stream_options.include_usage`, so usage always arrives.

    Tools and tool messages are passed through; the streamed tool-call pieces are
    gathered and reported whole on `Finished`.
    """

    name = "openai"
    supports_tools = True

    def __init__(self, client: AsyncOpenAI) -> None:
        self._client = client

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream one completion from the OpenAI API (or a compatible server)."""
        messages = cast("list[ChatCompletionMessageParam]", [_message(m) for m in request.messages])
        tools = cast("list[ChatCompletionToolUnionParam] | None", request.tools)
        tool_choice = cast("ChatCompletionToolChoiceOptionParam | None", request.tool_choice)
        tool_calls = _ToolCalls()
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
                tools=omit if tools is None else tools,
                tool_choice=omit if tool_choice is None else tool_choice,
            )
            async with stream:
                async for chunk in stream:
                    model = chunk.model or model
                    if chunk.usage is not None:
                        usage = _usage(chunk.usage)
                    for choice in chunk.choices:
                        if choice.delta.content:
                            yield TextDelta(choice.delta.content)
                        for delta in choice.delta.tool_calls or []:
                            tool_calls.add(delta)
                        if choice.finish_reason:
                            finish_reason = _FINISH_REASONS.get(choice.finish_reason, "stop")
        except openai.OpenAIError as error:
            raise _provider_error(error) from error
        if usage is None:
            raise ProviderError("provider_error", "the stream ended without usage", retryable=True)
        calls = tool_calls.complete()
        if calls and finish_reason == "stop":
            finish_reason = "tool_calls"  # some compatible servers say "stop" after tool calls
        yield Finished(usage=usage, finish_reason=finish_reason, model=model, tool_calls=calls)
