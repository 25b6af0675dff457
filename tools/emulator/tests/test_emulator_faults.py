"""Fault injection as the real SDKs experience it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from chatbus_emulator import EmulatorState, run_emulator
from conftest import Emulator
from openai.types.chat import ChatCompletionMessageParam

OPENAI_USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
ANTHROPIC_ARGS: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "hi"}],
}
FIVE_TOKENS = "one two three four five"
# A connection dropped mid-body surfaces as a transport error; the OpenAI SDK wraps it,
# the Anthropic SDK lets httpx2's error through.
BROKEN_STREAM = (openai.APIConnectionError, anthropic.APIConnectionError, httpx2.TransportError)


async def _openai_stream_until_error(emu: Emulator) -> tuple[list[str], BaseException]:
    received: list[str] = []
    stream = await emu.openai.chat.completions.create(
        model="gpt-test", messages=OPENAI_USER, stream=True
    )
    with pytest.raises(Exception) as caught:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    return received, caught.value


async def _anthropic_stream_until_error(emu: Emulator) -> tuple[list[str], BaseException]:
    received: list[str] = []
    with pytest.raises(Exception) as caught:
        async with emu.anthropic.messages.stream(**ANTHROPIC_ARGS) as stream:
            async for text in stream.text_stream:
                received.append(text)
    return received, caught.value


# -- HTTP error statuses ---------------------------------------------------------------


async def test_openai_429_with_retry_after(emu: Emulator) -> None:
    emu.state.script({"status": 429, "retry_after": 7})

    with pytest.raises(openai.RateLimitError) as caught:
        await emu.openai.chat.completions.create(model="gpt-test", messages=OPENAI_USER)

    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "7"
    assert error.code == "rate_limit_exceeded"
    body = error.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}


async def test_anthropic_429_with_retry_after_on_stream(emu: Emulator) -> None:
    emu.state.script({"status": 429, "retry_after": 1.5})

    with pytest.raises(anthropic.RateLimitError) as caught:
        async with emu.anthropic.messages.stream(**ANTHROPIC_ARGS) as stream:
            await stream.get_final_message()

    error = caught.value
    assert error.response.headers["retry-after"] == "1.5"
    assert error.type == "rate_limit_error"
    body = error.response.json()
    assert body["type"] == "error"
    assert body["request_id"] == error.request_id
    assert emu.last_request().status == 429


async def test_anthropic_529_is_overloaded(emu: Emulator) -> None:
    emu.state.script({"status": 529})

    with pytest.raises(anthropic.InternalServerError) as caught:
        await emu.anthropic.messages.create(**ANTHROPIC_ARGS)

    assert isinstance(caught.value, anthropic.OverloadedError)
    assert caught.value.status_code == 529
    assert caught.value.type == "overloaded_error"


async def test_openai_529_uses_openai_error_shape(emu: Emulator) -> None:
    emu.state.script({"status": 529})

    with pytest.raises(openai.InternalServerError) as caught:
        await emu.openai.chat.completions.create(model="gpt-test", messages=OPENAI_USER)

    assert caught.value.status_code == 529
    assert caught.value.response.json()["error"]["type"] == "server_error"


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_in_both_sdks(emu: Emulator, status: int) -> None:
    emu.state.script({"status": status}, {"status": status})

    with pytest.raises(openai.InternalServerError) as oai:
        await emu.openai.chat.completions.create(model="gpt-test", messages=OPENAI_USER)
    with pytest.raises(anthropic.InternalServerError) as ant:
        await emu.anthropic.messages.create(**ANTHROPIC_ARGS)

    assert oai.value.status_code == ant.value.status_code == status
    assert ant.value.type == "api_error"


# -- mid-stream faults -----------------------------------------------------------------


async def test_openai_cut_after_tokens_breaks_the_stream(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu.state.script({"reply": FIVE_TOKENS, "cut_after_tokens": 2})

    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        received, error = await _openai_stream_until_error(emu)

    assert received == ["one", " two"]
    assert isinstance(error, openai.APIConnectionError)
    record = emu.last_request()
    assert record.outcome == "cut"
    assert record.tokens_sent == 2
    # The cut is deliberate, so the server must not log it as an application error.
    assert not [r for r in caplog.records if r.name == "uvicorn.error"]


async def test_anthropic_cut_after_tokens_breaks_the_stream(emu: Emulator) -> None:
    emu.state.script({"reply": FIVE_TOKENS, "cut_after_tokens": 3})

    received, error = await _anthropic_stream_until_error(emu)

    assert received == ["one", " two", " three"]
    assert isinstance(error, BROKEN_STREAM)


async def test_malformed_chunk_raises_in_both_sdks(emu: Emulator) -> None:
    emu.state.script(
        {"reply": FIVE_TOKENS, "malformed_after_tokens": 1},
        {"reply": FIVE_TOKENS, "malformed_after_tokens": 4},
    )

    oai_received, oai_error = await _openai_stream_until_error(emu)
    ant_received, ant_error = await _anthropic_stream_until_error(emu)

    assert oai_received == ["one"]
    assert isinstance(oai_error, json.JSONDecodeError)
    assert ant_received == ["one", " two", " three", " four"]
    assert isinstance(ant_error, json.JSONDecodeError)


async def test_cut_on_non_streaming_request_is_a_connection_error(emu: Emulator) -> None:
    emu.state.script({"cut_after_tokens": 0})

    with pytest.raises(openai.APIConnectionError):
        await emu.openai.chat.completions.create(model="gpt-test", messages=OPENAI_USER)
    assert emu.last_request().outcome == "cut"


async def _cancel_stalled_consumer(consume: Any, emu: Emulator, tokens: int) -> float:
    got_tokens = asyncio.Event()
    task = asyncio.create_task(consume(got_tokens))
    await asyncio.wait_for(got_tokens.wait(), 2)
    await asyncio.sleep(0.05)  # the stream is now stalled
    assert emu.last_request().outcome == "pending"
    task.cancel()
    cancelled_at = time.time()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = await emu.wait_for(lambda r: r.disconnected)
    assert record.tokens_sent == tokens
    assert record.outcome == "disconnected"
    assert record.disconnected_at is not None
    return record.disconnected_at - cancelled_at


async def test_openai_stall_then_client_cancel_is_recorded_promptly(emu: Emulator) -> None:
    emu.state.script({"reply": FIVE_TOKENS, "stall_after_tokens": 2})

    async def consume(got_tokens: asyncio.Event) -> None:
        stream = await emu.openai.chat.completions.create(
            model="gpt-test", messages=OPENAI_USER, stream=True
        )
        async with stream:
            seen = 0
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    seen += 1
                    if seen == 2:
                        got_tokens.set()

    latency = await _cancel_stalled_consumer(consume, emu, tokens=2)
    assert latency < 0.2


async def test_anthropic_stall_then_client_cancel_is_recorded_promptly(emu: Emulator) -> None:
    emu.state.script({"reply": FIVE_TOKENS, "stall_after_tokens": 1})

    async def consume(got_tokens: asyncio.Event) -> None:
        async with emu.anthropic.messages.stream(**ANTHROPIC_ARGS) as stream:
            async for _ in stream.text_stream:
                got_tokens.set()

    latency = await _cancel_stalled_consumer(consume, emu, tokens=1)
    assert latency < 0.2


async def test_non_streaming_stall_times_out_client_and_records_disconnect(
    emu: Emulator,
) -> None:
    emu.state.script({"stall_after_tokens": 0})

    with pytest.raises(openai.APITimeoutError):
        await emu.openai.chat.completions.create(
            model="gpt-test", messages=OPENAI_USER, timeout=0.2
        )
    record = await emu.wait_for(lambda r: r.disconnected)
    assert record.status is None


# -- pacing ----------------------------------------------------------------------------


async def test_first_and_inter_token_delays(emu: Emulator) -> None:
    emu.state.script({"reply": "a b c d", "first_token_delay_ms": 150, "inter_token_delay_ms": 40})

    started = time.monotonic()
    stream = await emu.openai.chat.completions.create(
        model="gpt-test", messages=OPENAI_USER, stream=True
    )
    arrivals: list[float] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)

    assert len(arrivals) == 4
    assert arrivals[0] < 0.6
    # No token can arrive before the emulator sent it: lower bounds hold however late
    # this client reads (gaps between arrivals do not: a late read bunches them up).
    assert all(arrival >= 0.15 + index * 0.04 for index, arrival in enumerate(arrivals))


async def test_default_delays_come_from_state() -> None:
    state = EmulatorState(reply="x y", first_token_delay_ms=120)
    async with run_emulator(state) as url:
        client = anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0)
        started = time.monotonic()
        message = await client.messages.create(**ANTHROPIC_ARGS)
        elapsed = time.monotonic() - started
        await client.close()
    assert message.content[0].type == "text"
    assert message.content[0].text == "x y"
    assert elapsed >= 0.12


async def test_shutdown_is_fast_with_a_stalled_stream_in_flight() -> None:
    state = EmulatorState()
    state.script({"stall_after_tokens": 1})
    async with run_emulator(state) as url:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        stream = await client.chat.completions.create(
            model="gpt-test", messages=OPENAI_USER, stream=True
        )
        await anext(aiter(stream))
        stopping = time.monotonic()
    stop_duration = time.monotonic() - stopping

    with pytest.raises(openai.APIConnectionError):
        async for _ in stream:
            pass
    await client.close()
    assert stop_duration < 1.0
    assert state.requests()[0].outcome == "aborted"
