"""The unmodified `openai` SDK against chatbus's `/v1/chat/completions`."""

from __future__ import annotations

import uuid

import openai
import pytest
from openai import AsyncOpenAI

from .stack import MODEL, Stack
from .test_resume import stored_row

pytestmark = pytest.mark.integration


def _client(stack: Stack, user: str) -> AsyncOpenAI:
    return AsyncOpenAI(api_key=stack.token(user), base_url=f"{stack.gateway_url}/v1", max_retries=0)


async def test_non_streaming_completion_is_stored_with_the_same_text_and_usage(
    stack: Stack,
) -> None:
    tag = uuid.uuid4().hex[:6]
    client = _client(stack, f"sdk-{tag}")
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": f"be brief {tag}"},
            {"role": "user", "content": f"first {tag}"},
            {"role": "assistant", "content": "an earlier answer"},
            {"role": "user", "content": f"second {tag}"},
        ],
    )
    text = completion.choices[0].message.content
    assert text and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    extension = completion.model_extra["chatbus"]  # type: ignore[index]
    stored = await stored_row(stack, extension["message_id"])
    assert stored["content"] == text
    assert (stored["prompt_tokens"], stored["completion_tokens"]) == (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
    )
    # Stateless: the request's own messages were the prompt.
    prompt = [(m["role"], m["content"]) for m in stack.emulator.requests()[-1].body["messages"]]
    assert prompt == [
        ("system", f"be brief {tag}"),
        ("user", f"first {tag}"),
        ("assistant", "an earlier answer"),
        ("user", f"second {tag}"),
    ]


async def test_streaming_with_usage_and_a_continued_conversation(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    client = _client(stack, f"streamer-{tag}")
    first = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"remember {tag}"}]
    )
    conversation_id = first.model_extra["chatbus"]["conversation_id"]  # type: ignore[index]
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"what did I say {tag}"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"conversation_id": conversation_id},
    )
    parts, usage, message_id = [], None, None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.model_extra and "chatbus" in chunk.model_extra:
            message_id = chunk.model_extra["chatbus"]["message_id"]
    assert usage is not None and message_id is not None
    stored = await stored_row(stack, message_id)
    assert stored["content"] == "".join(parts)
    assert (stored["prompt_tokens"], stored["completion_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert str(stored["conversation_id"]) == conversation_id
    prompt = [m["content"] for m in stack.emulator.requests()[-1].body["messages"]]
    assert prompt == [f"remember {tag}", first.choices[0].message.content, f"what did I say {tag}"]


async def test_errors_come_in_the_openai_shape(stack: Stack) -> None:
    bad = AsyncOpenAI(api_key="not-a-token", base_url=f"{stack.gateway_url}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as unauthorised:
        await bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert unauthorised.value.status_code == 401
    body = unauthorised.value.body
    assert isinstance(body, dict) and body["type"] == "authentication_error"
    assert body["code"] == "unauthenticated"

    client = _client(stack, "tool-user")
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            n=2,
        )
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "n"
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            extra_body={"conversation_id": str(uuid.uuid4())},
        )
