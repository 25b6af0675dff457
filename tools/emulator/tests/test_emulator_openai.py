"""The real OpenAI SDK against the emulator's /v1/chat/completions and /v1/models."""

from __future__ import annotations

from typing import Any

from chatbus_emulator import ScriptedResponse
from conftest import Emulator
from openai.types.chat import ChatCompletionMessageParam

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Tell me about streams"}]
DEFAULT_REPLY = "Emulated reply to: Tell me about streams"


async def _stream_chunks(emu: Emulator, **kwargs: Any) -> list[Any]:
    stream = await emu.openai.chat.completions.create(
        model="gpt-test", messages=kwargs.pop("messages", USER), stream=True, **kwargs
    )
    return [chunk async for chunk in stream]


async def test_streamed_text_equals_default_reply(emu: Emulator) -> None:
    chunks = await _stream_chunks(emu)

    first = chunks[0].choices[0]
    assert first.delta.role == "assistant"
    assert first.delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_REPLY
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.object == "chat.completion.chunk" and c.model == "gpt-test" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    # Role chunk, one chunk per word-ish token (7), finish chunk.
    assert len(chunks) == 9
    assert all(c.usage is None for c in chunks)


async def test_stream_usage_chunk_reports_cached_tokens(emu: Emulator) -> None:
    emu.state.script(ScriptedResponse(reply="cached answer here", cached_tokens=1024))

    chunks = await _stream_chunks(emu, stream_options={"include_usage": True})

    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    # 4 prompt words, plus the cached tokens that OpenAI counts inside prompt_tokens.
    assert usage_chunk.usage.prompt_tokens == 4 + 1024
    assert usage_chunk.usage.completion_tokens == 3
    assert usage_chunk.usage.total_tokens == 4 + 1024 + 3
    assert usage_chunk.usage.prompt_tokens_details is not None
    assert usage_chunk.usage.prompt_tokens_details.cached_tokens == 1024
    assert chunks[-2].choices[0].finish_reason == "stop"


async def test_non_streaming_completion(emu: Emulator) -> None:
    emu.state.script({"reply": "Plain answer.", "cached_tokens": 2})

    completion = await emu.openai.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "system", "content": "be nice"}, *USER],
    )

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Plain answer."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 6 + 2
    assert completion.usage.completion_tokens == 2
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 2


async def test_max_tokens_stops_with_length(emu: Emulator) -> None:
    chunks = await _stream_chunks(emu, max_tokens=2)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Emulated reply"
    assert chunks[-1].choices[0].finish_reason == "length"

    completion = await emu.openai.chat.completions.create(
        model="gpt-test", messages=USER, max_completion_tokens=3
    )
    assert completion.choices[0].message.content == "Emulated reply to:"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


async def test_reply_tokens_generates_filler(emu: Emulator) -> None:
    emu.state.script({"reply_tokens": 50})

    chunks = await _stream_chunks(emu, stream_options={"include_usage": True})

    content = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert len(content) == 50
    assert "".join(content).startswith("lorem ipsum dolor")
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 50


async def test_stream_helper_accumulates_final_completion(emu: Emulator) -> None:
    async with emu.openai.chat.completions.stream(
        model="gpt-test", messages=USER, stream_options={"include_usage": True}
    ) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == DEFAULT_REPLY
    assert final.usage is not None
    assert final.usage.completion_tokens == 7


async def test_models_list(emu: Emulator) -> None:
    page = await emu.openai.models.list()
    assert [m.id for m in page.data] == list(emu.state.models)
    assert all(m.object == "model" for m in page.data)
