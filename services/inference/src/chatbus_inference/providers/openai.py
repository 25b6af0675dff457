"""OpenAI chat completions, and any OpenAI-compatible server (Ollama, vLLM) by base URL.

The `openai` SDK's client holds the configuration (key, base URL, organization and
project, from arguments or the SDK's own environment variables), but the request is
one POST through `aiohttp` and the stream is read as raw server-sent events, each chunk
parsed with `json.loads`. Measured against the emulator, the SDK's request building
(parameter transforms, options models, its auth and retry wrappers) added ~1.3 ms before
the first byte and ~1.2 ms of CPU to every call, and its typed chunk objects ~0.2 ms to
every token; the SDK's HTTP library (`httpx2`) still took ~0.64 ms of CPU for a call of
eight chunks, aiohttp (C parser) ~0.21 ms. TLS trusts what the SDK's client trusts
(`httpx2.create_ssl_context`); the proxy comes from `HTTP(S)_PROXY` and `NO_PROXY` as
with the SDK, looked up once (aiohttp's `trust_env` would look it and `.netrc` up in a
thread for every request).
Status codes map to errors as the SDK's exception classes did (`_status_error`).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpx2
from chatbus_contracts.commands import FunctionCall, ToolCall
from chatbus_contracts.common import FinishReason, TokenUsage
from openai import AsyncOpenAI

from .base import (
    CompletionRequest,
    Finished,
    PromptMessage,
    ProviderError,
    StreamEvent,
    TextDelta,
    retry_after,
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


def _request_body(request: CompletionRequest) -> bytes:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_message(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    optional = {
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "tools": request.tools,
        "tool_choice": request.tool_choice,
    }
    body |= {key: value for key, value in optional.items() if value is not None}
    return json.dumps(body).encode()


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


# Upper bound on an error body kept in a message (some servers answer with HTML pages).
_ERROR_BODY_CHARS = 2000


def _status_error(status: int, headers: Mapping[str, str], raw_body: bytes) -> ProviderError:
    """The error of a non-2xx answer (with its `retry-after`)."""
    body = raw_body.decode(errors="replace")[:_ERROR_BODY_CHARS]
    message = f"Error code: {status} - {body}"
    if status == 429:
        error = ProviderError("rate_limited", message, retryable=True)
    elif status in (401, 403):
        error = ProviderError("auth_failed", message)
    elif status == 400:
        code = "context_too_long" if "context" in body.lower() else "invalid_request"
        error = ProviderError(code, message)
    else:  # 404, 409, 422, 5xx: as the SDK's APIStatusError, worth another try
        error = ProviderError("provider_unavailable", message, retryable=True)
    error.retry_after_seconds = retry_after(headers)
    return error


def _env_proxy(url: str) -> str | None:
    """The proxy that `HTTP_PROXY`/`HTTPS_PROXY` name for `url`, unless `NO_PROXY` exempts it."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


async def _chunks(body: aiohttp.StreamReader) -> AsyncIterator[dict[str, Any]]:
    """The JSON chunks of an SSE body as they arrive, up to `[DONE]`; an error event raises.

    Lines may end in `\\n` or `\\r\\n` and be of any length (split across reads, or longer
    than one). The body is read to its end even after `[DONE]`, so the connection goes
    back to the pool for the next turn instead of being closed (a new TLS handshake per
    turn).
    """
    pending = b""
    done = False
    async for data in body.iter_any():
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            if done or not line.startswith(b"data:"):
                continue  # after [DONE], blank separators, comments, `event:` lines
            chunk = _chunk(line)
            if chunk is None:
                done = True
            else:
                yield chunk
    if pending.startswith(b"data:") and not done and (chunk := _chunk(pending)) is not None:
        yield chunk


def _chunk(line: bytes) -> dict[str, Any] | None:
    """The JSON of one `data:` line; None for `[DONE]`."""
    data = line[5:].strip()
    if data == b"[DONE]":
        return None
    chunk: dict[str, Any] = json.loads(data)
    if chunk.get("error"):
        message = str(chunk["error"].get("message") or chunk["error"])
        raise ProviderError("provider_error", message, retryable=True)
    return chunk


class OpenAIProvider:
    """Streams with `stream_options.include_usage`, so usage always arrives.

    Tools and tool messages are passed through; the streamed tool-call pieces are
    gathered and reported whole on `Finished`. Connections are pooled across turns.
    """

    name = "openai"
    supports_tools = True

    def __init__(self, client: AsyncOpenAI) -> None:
        self._url = str(client.base_url).rstrip("/") + "/chat/completions"
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",  # as the SDK sends it; compatible servers know it
            "User-Agent": client.user_agent,
            **client.auth_headers,
        }
        if client.organization:
            headers["OpenAI-Organization"] = client.organization
        if client.project:
            headers["OpenAI-Project"] = client.project
        self._headers = headers
        self._proxy = _env_proxy(self._url)
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        """The pooled session (made on first use: it belongs to the running loop)."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                # As the SDK configures its client: 5 s to connect, 600 s per read.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=600.0),
                connector=aiohttp.TCPConnector(limit=1000, ssl=httpx2.create_ssl_context()),
            )
        return self._http

    async def aclose(self) -> None:
        """Close the pooled connections."""
        if self._http is not None:
            await self._http.close()

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream one completion from the OpenAI API (or a compatible server)."""
        tool_calls = _ToolCalls()
        finish_reason: FinishReason = "stop"
        usage: TokenUsage | None = None
        model = request.model
        try:
            async with self._session().post(
                self._url,
                data=_request_body(request),
                headers=self._headers,
                proxy=self._proxy,
                allow_redirects=True,  # as the SDK's client does
            ) as response:
                if response.status >= 300:
                    raise _status_error(response.status, response.headers, await response.read())
                async for chunk in _chunks(response.content):
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
        except aiohttp.ClientError as error:  # refused, timed out, or broken mid-stream
            raise ProviderError("provider_unavailable", str(error), retryable=True) from error
        except ValueError as error:  # not JSON, or not UTF-8
            raise ProviderError("provider_error", f"malformed chunk: {error}", True) from error
        if usage is None:
            raise ProviderError("provider_error", "the stream ended without usage", retryable=True)
        calls = tool_calls.complete()
        if calls and finish_reason == "stop":
            finish_reason = "tool_calls"  # some compatible servers say "stop" after tool calls
        yield Finished(usage=usage, finish_reason=finish_reason, model=model, tool_calls=calls)
