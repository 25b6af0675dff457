"""Function calling through `/v1/chat/completions`, with the unmodified `openai` SDK.

Tools pass through to the `openai` provider (here the emulator); providers that cannot
take them refuse the turn instead of answering without them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
)

from .stack import MODEL, Stack
from .test_resume import stored_row

pytestmark = pytest.mark.integration

WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}


def _client(stack: Stack, user: str) -> AsyncOpenAI:
    return AsyncOpenAI(api_key=stack.token(user), base_url=f"{stack.gateway_url}/v1", max_retries=0)


def _user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def _assistant_row(stack: Stack, message_id: str) -> tuple[str, str]:
    await stored_row(stack, message_id)
    rows = await stack.fetch(
        "SELECT content, finish_reason FROM conversation.messages WHERE id = $1",
        uuid.UUID(message_id),
    )
    return rows[0]["content"], rows[0]["finish_reason"]


async def test_a_tool_call_comes_back_whole_and_the_provider_saw_the_tools(stack: Stack) -> None:
    stack.emulator.reset()
    stack.emulator.script(
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]}
    )
    client = _client(stack, _user("tools"))
    key = uuid.uuid4().hex

    async def ask() -> ChatCompletion:
        return await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER_TOOL],
            tool_choice="auto",
            extra_headers={"Idempotency-Key": key},
        )

    completion = await ask()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.type == "function" and call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}

    sent = stack.emulator.requests()[-1].body
    assert sent["tools"] == [WEATHER_TOOL] and sent["tool_choice"] == "auto"
    # Stored and billed like any turn; the answer has no text.
    message_id = completion.model_extra["chatbus"]["message_id"]  # type: ignore[index]
    assert await _assistant_row(stack, message_id) == ("", "tool_calls")

    # A retry with the same key replays the same tool call, without asking the provider.
    again = await ask()
    assert again.choices[0].message.tool_calls == choice.message.tool_calls
    assert again.choices[0].finish_reason == "tool_calls"
    assert len(stack.emulator.requests()) == 1


async def test_streamed_tool_calls_accumulate_like_openais(stack: Stack) -> None:
    stack.emulator.reset()
    stack.emulator.script(
        {
            "reply": "Checking both.",
            "tool_calls": [
                {"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}},
            ],
        }
    )
    client = _client(stack, _user("tool-stream"))
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris and Oslo?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish_reasons: list[str] = []
    async for chunk in stream:
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
    assert finish_reasons == ["tool_calls"]
    assert "".join(text) == "Checking both."
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_weather"]
    assert [json.loads(calls[i]["arguments"]) for i in sorted(calls)] == [
        {"city": "Paris"},
        {"city": "Oslo", "unit": "celsius"},
    ]
    assert len({calls[0]["id"], calls[1]["id"]}) == 2
    upstream = stack.emulator.requests()[-1]
    assert upstream.stream and upstream.body["tools"] == [WEATHER_TOOL]


async def test_tool_results_reach_the_provider_intact_and_get_an_answer(stack: Stack) -> None:
    stack.emulator.reset()
    stack.emulator.script(
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
        {"reply": "It is 21 °C in Paris."},
    )
    client = _client(stack, _user("tool-result"))
    messages: list[Any] = [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]
    first = await client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    assistant = first.choices[0].message
    assert assistant.tool_calls is not None
    call = assistant.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    # As the OpenAI docs do it: the SDK's message object goes back, then the result.
    messages += [
        assistant,
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21}'},
    ]
    second = await client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "It is 21 °C in Paris."
    assert second.choices[0].message.tool_calls is None

    sent = stack.emulator.requests()[-1].body
    assert sent["tools"] == [WEATHER_TOOL]
    assert sent["messages"] == [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21}'},
    ]
    message_id = second.model_extra["chatbus"]["message_id"]  # type: ignore[index]
    assert await _assistant_row(stack, message_id) == ("It is 21 °C in Paris.", "stop")


async def test_providers_without_tools_refuse_them_in_the_openai_shape(stack: Stack) -> None:
    stack.emulator.reset()
    client = _client(stack, _user("no-tools"))
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model="claude-haiku",
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[WEATHER_TOOL],
        )
    assert refused.value.status_code == 400
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "invalid_request"
    assert body["message"] == "tools are supported for the openai provider only"
    assert body["type"] == "invalid_request_error"

    # Tool messages alone are refused as well: Anthropic would not understand them.
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model="claude-haiku",
            messages=[
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
        )
    assert stack.emulator.requests() == []  # no provider was asked


async def test_a_failing_openai_model_with_tools_does_not_fall_back_to_anthropic(
    stack: Stack,
) -> None:
    stack.emulator.reset()
    stack.emulator.script(*[{"status": 529}] * 3)
    client = _client(stack, _user("tool-fallback"))
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(
            model="gpt-4o",  # falls back to claude-sonnet without tools
            messages=[{"role": "user", "content": "Weather?"}],
            tools=[WEATHER_TOOL],
        )
    assert failed.value.status_code == 503
    assert [r.path for r in stack.emulator.requests()] == ["/v1/chat/completions"] * 3


async def test_tools_with_a_stored_conversation_are_refused(stack: Stack) -> None:
    client = _client(stack, _user("tool-conversation"))
    first = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}]
    )
    conversation_id = first.model_extra["chatbus"]["conversation_id"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Weather?"}],
            tools=[WEATHER_TOOL],
            extra_body={"conversation_id": conversation_id},
        )
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "tools"
