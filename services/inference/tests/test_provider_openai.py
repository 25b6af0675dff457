"""OpenAIProvider against the repo's provider emulator (raw HTTP, the SDK's configuration)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from chatbus_emulator.state import EmulatorState
from chatbus_inference.providers.base import (
    CompletionRequest,
    Finished,
    PromptMessage,
)
from chatbus_inference.providers.openai import OpenAIProvider, _status_error
from openai import AsyncOpenAI
from provider_streams import collect, failed, texts

MODEL = "gpt-4o-mini"
_ONLY_USAGE = (
    b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 0}}\n\n'
    b"data: [DONE]\n\n"
)


@asynccontextmanager
async def _upstream(
    answer: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """An HTTP server on a free port whose every request `answer` answers: its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def env(
    emulator: tuple[EmulatorState, str],
) -> AsyncIterator[tuple[EmulatorState, OpenAIProvider]]:
    state, url = emulator
    state.reset()
    client = AsyncOpenAI(
        api_key="sk-test", base_url=f"{url}/v1", organization="org-test", max_retries=0
    )
    provider = OpenAIProvider(client)
    yield state, provider
    await provider.aclose()


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


async def _collect_from(base_url: str, api_key: str = "x") -> tuple[list[Any], Any]:
    client = AsyncOpenAI(api_key=api_key, base_url=f"{base_url}/v1", max_retries=0)
    provider = OpenAIProvider(client)
    try:
        return await collect(provider, _request())
    finally:
        await provider.aclose()


async def test_the_key_goes_as_a_bearer_token() -> None:
    """(The emulator keeps no credentials in its request log.)"""
    seen: list[web.Request] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(body=_ONLY_USAGE, content_type="text/event-stream")

    async with _upstream(answer) as url:
        events, error = await _collect_from(url, api_key="sk-secret")
    assert error is None and isinstance(events[-1], Finished)
    (request,) = seen
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-secret"


async def test_a_redirect_is_followed_as_the_sdk_follows_it() -> None:
    seen: list[tuple[str, str, bytes]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, await request.read()))
        if request.path.startswith("/v1/"):
            raise web.HTTPTemporaryRedirect("/v2/chat/completions")
        return web.Response(body=_ONLY_USAGE, content_type="text/event-stream")

    async with _upstream(answer) as url:
        events, error = await _collect_from(url)
    assert error is None and isinstance(events[-1], Finished)
    assert [path for _, path, _ in seen] == ["/v1/chat/completions", "/v2/chat/completions"]
    (first_method, _, first_body), (method, _, body) = seen
    assert method == first_method == "POST" and body == first_body != b""


async def test_the_proxy_of_http_proxy_carries_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    targets: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        targets.append(str(request.url))
        return web.Response(body=_ONLY_USAGE, content_type="text/event-stream")

    async with _upstream(proxy) as proxy_url:
        for name in ("NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        events, error = await _collect_from("http://upstream.invalid")
    assert error is None and isinstance(events[-1], Finished)
    assert targets == ["http://upstream.invalid/v1/chat/completions"]


async def test_an_answer_in_pieces_is_read_line_by_line() -> None:
    """SSE lines split across reads, `\\r\\n` endings and one line longer than a read."""
    text = "x" * 200_000
    chunk = json.dumps({"choices": [{"delta": {"content": text}}], "usage": None}).encode()

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for piece in (b"data: " + chunk[:10], chunk[10:] + b"\r\n\r", b"\n" + _ONLY_USAGE):
            await response.write(piece)
        await response.write_eof()
        return response

    async with _upstream(answer) as url:
        events, error = await _collect_from(url)
    assert error is None
    assert "".join(texts(events)) == text and isinstance(events[-1], Finished)


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
    assert error.retry_after_seconds == 1.0


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
    assert error.retry_after_seconds is None


async def test_a_400_about_the_context_is_context_too_long() -> None:
    body = b'{"error": {"message": "maximum context length is 8192 tokens", "code": null}}'
    error = _status_error(400, {}, body)
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


async def test_a_chunk_that_is_not_utf8_is_a_provider_error() -> None:
    async def answer(request: web.Request) -> web.Response:
        body = b'data: {"choices": [{"delta": {"content": "\xff"}}]}\n\n' + _ONLY_USAGE
        return web.Response(body=body, content_type="text/event-stream")

    async with _upstream(answer) as url:
        _, error = await _collect_from(url)
    assert error is not None and error.code == "provider_error"


async def test_connection_refused_is_provider_unavailable() -> None:
    client = AsyncOpenAI(api_key="x", base_url="http://127.0.0.1:9/v1", max_retries=0)
    provider = OpenAIProvider(client)
    _, error = await failed(provider, _request())
    await provider.aclose()
    assert error.code == "provider_unavailable" and error.retryable
