"""AnthropicProvider against the repo's provider emulator, through the real `anthropic` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from chatbus_emulator.state import EmulatorState
from chatbus_inference.providers.anthropic import AnthropicProvider
from chatbus_inference.providers.base import (
    CompletionRequest,
    Finished,
    PromptMessage,
    TextDelta,
)
from provider_streams import collect, failed, texts

MODEL = "claude-test"


@pytest.fixture
async def env(
    emulator: tuple[EmulatorState, str],
) -> AsyncIterator[tuple[EmulatorState, AnthropicProvider]]:
    state, url = emulator
    state.reset()
    client = anthropic.AsyncAnthropic(api_key="x", base_url=url, max_retries=0)
    yield state, AnthropicProvider(client)
    await client.close()


def _request(**fields: Any) -> CompletionRequest:
    messages = [
        PromptMessage("system", "You are terse."),
        PromptMessage("system", "Answer in English."),
        PromptMessage("user", "hello"),
        PromptMessage("assistant", "hi"),
        PromptMessage("user", "how are you?"),
    ]
    return CompletionRequest(**{"model": MODEL, "messages": messages, **fields})


async def test_streams_text_and_maps_usage_including_cache(
    env: tuple[EmulatorState, AnthropicProvider],
) -> None:
    state, provider = env
    reply = "Fine, thanks for asking!"
    state.script({"reply": reply, "cached_tokens": 1200, "cache_creation_tokens": 300})
    events, error = await collect(provider, _request())
    assert error is None
    assert "".join(texts(events)) == reply
    assert len(texts(events)) == 4  # one delta per emulated token
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.finish_reason == "stop" and finished.model == MODEL
    # The emulator reports the prompt's word count as `input_tokens` (cache excluded).
    input_tokens = 11  # "You are terse." "Answer in English." "hello" "hi" "how are you?"
    usage = finished.usage
    assert usage.prompt_tokens == input_tokens + 1200 + 300
    assert usage.cached_tokens == 1200
    assert usage.cache_write_tokens == 300
    assert usage.completion_tokens == 4
    assert not usage.estimated


async def test_request_puts_system_blocks_with_cache_control_on_the_last(
    env: tuple[EmulatorState, AnthropicProvider],
) -> None:
    state, provider = env
    state.script({"reply": "ok"})
    events, error = await collect(provider, _request(temperature=0.3))
    assert error is None and isinstance(events[-1], Finished)
    body = state.requests()[-1].body
    assert body["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in English.", "cache_control": {"type": "ephemeral"}},
    ]
    assert body["messages"] == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "how are you?"},
    ]
    assert body["stream"] is True
    assert body["max_tokens"] == 1024  # required by Anthropic: the default fills in
    assert "temperature" not in body  # refused by the API version SDK 2.x sends


async def test_no_system_messages_means_no_system_parameter(
    env: tuple[EmulatorState, AnthropicProvider],
) -> None:
    state, provider = env
    request = CompletionRequest(model=MODEL, messages=[PromptMessage("user", "hi")])
    events, error = await collect(provider, request)
    assert error is None and isinstance(events[-1], Finished)
    assert "system" not in state.requests()[-1].body


async def test_max_tokens_is_sent_and_truncation_maps_to_length(
    env: tuple[EmulatorState, AnthropicProvider],
) -> None:
    state, provider = env
    state.script({"reply_tokens": 10})
    events, error = await collect(provider, _request(max_tokens=3))
    assert error is None
    assert state.requests()[-1].body["max_tokens"] == 3
    assert len(texts(events)) == 3
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.finish_reason == "length" and finished.usage.completion_tokens == 3


async def test_429_is_rate_limited_retryable_with_retry_after(
    env: tuple[EmulatorState, AnthropicProvider],
) -> None:
    state, provider = env
    state.script({"status": 429, "retry_after": 1})
    events, error = await failed(provider, _request())
    assert events == []
    assert error.code == "rate_limited" and error.retryable
    assert isinstance(error.__cause__, anthropic.RateLimitError)
    assert error.retry_after_seconds == 1.0


async def test_529_overloaded_is_provider_unavailable_retryable(
    env: tuple[EmulatorState, AnthropicProvider],
) -> None:
    state, provider = env
    state.script({"status": 529})
    events, error = await failed(provider, _request())
    assert events == []
    assert error.code == "provider_unavailable" and error.retryable
    assert isinstance(error.__cause__, anthropic.OverloadedError)
    assert error.retry_after_seconds is None


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, "auth_failed"), (403, "auth_failed"), (400, "invalid_request"), (500, None)],
)
async def test_other_statuses_map_to_stable_codes(
    env: tuple[EmulatorState, AnthropicProvider], status: int, code: str | None
) -> None:
    state, provider = env
    state.script({"status": status})
    _, error = await failed(provider, _request())
    if code is None:  # 5xx
        assert error.code == "provider_unavailable" and error.retryable
    else:
        assert error.code == code and not error.retryable


async def test_cut_after_tokens_is_a_non_retryable_provider_error(
    env: tuple[EmulatorState, AnthropicProvider],
) -> None:
    state, provider = env
    state.script({"reply": "one two three four five", "cut_after_tokens": 3})
    events, error = await failed(provider, _request())
    assert texts(events) == ["one", " two", " three"]
    assert all(isinstance(e, TextDelta) for e in events)
    assert error.code == "provider_error" and not error.retryable
    # The input side was reported by message_start; the output is estimated per delta.
    assert error.partial_usage is not None and error.partial_usage.estimated
    assert error.partial_usage.completion_tokens == 3


async def test_cut_before_any_token_is_retryable(
    env: tuple[EmulatorState, AnthropicProvider],
) -> None:
    state, provider = env
    state.script({"reply": "one two", "cut_after_tokens": 0})
    events, error = await failed(provider, _request())
    assert events == []
    assert error.code == "provider_unavailable" and error.retryable


async def test_malformed_event_after_tokens_is_a_non_retryable_provider_error(
    env: tuple[EmulatorState, AnthropicProvider],
) -> None:
    state, provider = env
    state.script({"reply": "one two three four", "malformed_after_tokens": 2})
    events, error = await failed(provider, _request())
    assert texts(events) == ["one", " two"]
    assert error.code == "provider_error" and not error.retryable


async def test_connection_refused_is_provider_unavailable() -> None:
    client = anthropic.AsyncAnthropic(api_key="x", base_url="http://127.0.0.1:9", max_retries=0)
    _, error = await failed(AnthropicProvider(client), _request())
    assert error.code == "provider_unavailable" and error.retryable
