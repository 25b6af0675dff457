"""OpenAIProvider against the repo's provider emulator (raw HTTP, the SDK's configuration)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from chatbus_emulator.state import EmulatorState
from chatbus_inference.providers.base import (
    CompletionRequest,
    Finished,
    PromptMessage,
)
from chatbus_inference.providers.openai import OpenAIProvider, _status_error
from chatbus_inference.resilience import retry_after_seconds
from openai import AsyncOpenAI
from provider_streams import collect, failed, texts

MODEL = "gpt-4o-mini"
_ONLY_USAGE = (
    b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 0}}\n\n'
    b"data: [DONE]\n\n"
)


def _mock(
    answer: Callable[[httpx2.Request], httpx2.Response], **options: Any
) -> httpx2.AsyncClient:
    """An HTTP client whose every request `answer` answers (no network)."""
    return httpx2.AsyncClient(transport=httpx2.MockTransport(answer), **options)


@pytest.fixture
def env(emulator: tuple[EmulatorState, str]) -> tuple[EmulatorState, OpenAIProvider]:
    state, url = emulator
    state.reset()
    client = AsyncOpenAI(
        api_key="sk-test", base_url=f"{url}/v1", organization="org-test", max_retries=0
    )
    return state, OpenAIProvider(client)


def _request(**fields: Any) -> CompletionRequest:
    messages = [PromptMessage("system", "You are terse."), PromptMessage("user", "how are you?")]
    return CompletionRequest(**{"model": MODEL, "messages": messages, **fields})


async def test_streams_text_then_usage_and_sends_the_sdk_request(
    env: tuple[EmulatorState, OpenAIProvider],
) -> None:
    state, provider = env
    state.script({"reply": "fine thanks", "cached_tokens": 2})
    events, error = await collect(provider, _request(temperature=0.5, max_tokens=40))
    assert error is None
    assert "".join(texts(events)) == "fine thanks"
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.finish_reason == "stop" and finished.model.startswith(MODEL)
    assert finished.usage.completion_tokens == 2 and finished.usage.cached_tokens == 2
    (record,) = state.requests()
    assert record.path == "/v1/chat/completions"
    assert record.body == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "how are you?"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.5,
        "max_tokens": 40,
    }
    assert record.headers["openai-organization"] == "org-test"
    assert record.headers["user-agent"].startswith("AsyncOpenAI/Python")


async def test_the_key_goes_as_a_bearer_token() -> None:
    """(The emulator keeps no credentials in its request log.)"""
    seen: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, content=_ONLY_USAGE)

    client = AsyncOpenAI(api_key="sk-secret", base_url="http://upstream/v1", max_retries=0)
    events, error = await collect(OpenAIProvider(client, _mock(answer)), _request())
    assert error is None and isinstance(events[-1], Finished)
    (request,) = seen
    assert str(request.url) == "http://upstream/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-secret"


async def test_a_redirect_is_followed_as_the_sdk_follows_it() -> None:
    seen: list[str] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        if request.url.path.startswith("/v1/"):
            return httpx2.Response(307, headers={"location": "http://upstream/v2/chat/completions"})
        return httpx2.Response(200, content=_ONLY_USAGE)

    client = AsyncOpenAI(api_key="x", base_url="http://upstream/v1", max_retries=0)
    provider = OpenAIProvider(client, _mock(answer))
    events, error = await collect(provider, _request())
    assert error is None and isinstance(events[-1], Finished)
    assert seen == ["http://upstream/v1/chat/completions", "http://upstream/v2/chat/completions"]


async def test_tool_calls_arrive_whole_on_finished(
    env: tuple[EmulatorState, OpenAIProvider],
) -> None:
    state, provider = env
    state.script({"tool_calls": [{"name": "lookup", "arguments": '{"q": "x"}'}]})
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    events, error = await collect(provider, _request(tools=tools, tool_choice="auto"))
    assert error is None
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.finish_reason == "tool_calls"
    (call,) = finished.tool_calls
    assert call.function.name == "lookup" and call.function.arguments == '{"q": "x"}'
    assert state.requests()[0].body["tool_choice"] == "auto"


async def test_429_is_rate_limited_retryable_with_retry_after(
    env: tuple[EmulatorState, OpenAIProvider],
) -> None:
    state, provider = env
    state.script({"status": 429, "retry_after": 1})
    events, error = await failed(provider, _request())
    assert events == []
    assert error.code == "rate_limited" and error.retryable
    assert "Rate limit reached" in error.message
    assert retry_after_seconds(error) == 1.0


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (401, "auth_failed", False),
        (400, "invalid_request", False),
        (404, "provider_unavailable", True),
        (500, "provider_unavailable", True),
        (529, "provider_unavailable", True),
    ],
)
async def test_other_statuses_map_to_stable_codes(
    env: tuple[EmulatorState, OpenAIProvider], status: int, code: str, retryable: bool
) -> None:
    state, provider = env
    state.script({"status": status})
    _, error = await failed(provider, _request())
    assert (error.code, error.retryable) == (code, retryable)
    assert retry_after_seconds(error) is None


async def test_a_400_about_the_context_is_context_too_long() -> None:
    body = b'{"error": {"message": "maximum context length is 8192 tokens", "code": null}}'
    response = httpx2.Response(400, content=body, request=httpx2.Request("POST", "http://x"))
    error = await _status_error(response)
    assert (error.code, error.retryable) == ("context_too_long", False)


async def test_cut_before_any_token_is_retryable(
    env: tuple[EmulatorState, OpenAIProvider],
) -> None:
    state, provider = env
    state.script({"reply": "one two", "cut_after_tokens": 0})
    events, error = await failed(provider, _request())
    assert events == []
    assert error.code == "provider_unavailable" and error.retryable


async def test_cut_after_tokens_keeps_the_tokens_and_fails(
    env: tuple[EmulatorState, OpenAIProvider],
) -> None:
    state, provider = env
    state.script({"reply": "one two three four five", "cut_after_tokens": 3})
    events, error = await failed(provider, _request())
    assert texts(events) == ["one", " two", " three"]
    assert error.code == "provider_unavailable"


async def test_malformed_chunk_is_a_provider_error(
    env: tuple[EmulatorState, OpenAIProvider],
) -> None:
    state, provider = env
    state.script({"reply": "one two three four", "malformed_after_tokens": 2})
    events, error = await failed(provider, _request())
    assert texts(events) == ["one", " two"]
    assert error.code == "provider_error"


async def test_connection_refused_is_provider_unavailable() -> None:
    client = AsyncOpenAI(api_key="x", base_url="http://127.0.0.1:9/v1", max_retries=0)
    _, error = await failed(OpenAIProvider(client), _request())
    assert error.code == "provider_unavailable" and error.retryable
