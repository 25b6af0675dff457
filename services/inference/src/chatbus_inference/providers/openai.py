"""OpenAI chat completions, and any OpenAI-compatible server (Ollama, vLLM) by base URL.

The SDK makes the request (auth, retries of the connection, status errors), but the
stream is read as raw server-sent events and each chunk parsed with `json.loads`:
the SDK's typed chunk objects cost ~0.2 ms each, several times the parse, and a chunk
is on the hot path of every token.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx2
import openai
from chatbus_contracts.commands import FunctionCall, ToolCall
from chatbus_contracts.common import FinishReason, TokenUsage
from openai import AsyncOpenAI, omit
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionToolChoiceOptionParam,
    ChatCompletionToolUnionParam,
)

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


def _usage(raw: dict[str, Any]) -> TokenUsage:
    details = raw.get("prompt_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=raw.get("prompt_tokens") or 0,
        completion_tokens=raw.get("completion_tokens") or 0,
        cached_tokens=details.get("cached_tokens") or 0,
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

    def add(self, delta: dict[str, Any]) -> None:
        call = self._calls.setdefault(delta["index"], {"id": "", "name": "", "arguments": ""})
        call["id"] = call["id"] or delta.get("id") or ""
        function = delta.get("function") or {}
        call["name"] += function.get("name") or ""
        call["arguments"] += function.get("arguments") or ""

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


async def _chunks(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON chunks of an SSE stream, up to `[DONE]`; an error event raises.

    The body is read to its end even after `[DONE]`, so the connection goes back to the
    pool for the next turn instead of being closed (a new TLS handshake per turn).
    """
    done = False
    async for line in lines:
        if done or not line.startswith("data:"):
            continue  # after [DONE], blank separators, comments, `event:` lines
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            continue
        chunk: dict[str, Any] = json.loads(data)
        if chunk.get("error"):
            message = str(chunk["error"].get("message") or chunk["error"])
            raise ProviderError("provider_error", message, retryable=True)
        yield chunk


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
            response = self._client.chat.completions.with_streaming_response.create(
                model=request.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                temperature=omit if request.temperature is None else request.temperature,
                max_tokens=omit if request.max_tokens is None else request.max_tokens,
                tools=omit if tools is None else tools,
                tool_choice=omit if tool_choice is None else tool_choice,
            )
            async with response as raw:
                async for chunk in _chunks(raw.iter_lines()):
                    model = chunk.get("model") or model
                    if chunk.get("usage"):
                        usage = _usage(chunk["usage"])
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            yield TextDelta(delta["content"])
                        for call in delta.get("tool_calls") or ():
                            tool_calls.add(call)
                        if choice.get("finish_reason"):
                            finish_reason = _FINISH_REASONS.get(choice["finish_reason"], "stop")
        except openai.OpenAIError as error:
            raise _provider_error(error) from error
        except httpx2.HTTPError as error:  # the connection broke mid-stream (the SDK's httpx)
            raise ProviderError("provider_unavailable", str(error), retryable=True) from error
        except json.JSONDecodeError as error:
            raise ProviderError("provider_error", f"malformed chunk: {error}", True) from error
        if usage is None:
            raise ProviderError("provider_error", "the stream ended without usage", retryable=True)
        calls = tool_calls.complete()
        if calls and finish_reason == "stop":
            finish_reason = "tool_calls"  # some compatible servers say "stop" after tool calls
        yield Finished(usage=usage, finish_reason=finish_reason, model=model, tool_calls=calls)
