"""The real Anthropic SDK against the emulator's /v1/messages and /v1/models."""

from __future__ import annotations

import httpx
from anthropic.types import MessageParam, RawMessageDeltaEvent, RawMessageStartEvent, TextBlockParam
from chatbus_emulator import ScriptedResponse
from conftest import Emulator

USER: list[MessageParam] = [{"role": "user", "content": "Explain prompt caching"}]
DEFAULT_REPLY = "Emulated reply to: Explain prompt caching"
SYSTEM_BLOCKS: list[TextBlockParam] = [
    {"type": "text", "text": "You are a careful assistant.", "cache_control": {"type": "ephemeral"}}
]


async def test_streamed_text_and_final_usage(emu: Emulator) -> None:
    emu.state.script(
        ScriptedResponse(reply="Caching saves money.", cached_tokens=900, cache_creation_tokens=50)
    )

    async with emu.anthropic.messages.stream(
        model="claude-test", max_tokens=256, system=SYSTEM_BLOCKS, messages=USER
    ) as stream:
        deltas = [text async for text in stream.text_stream]
        final = await stream.get_final_message()

    assert "".join(deltas) == "Caching saves money."
    assert deltas == ["Caching", " saves", " money."]
    assert final.content[0].type == "text"
    assert final.content[0].text == "Caching saves money."
    assert final.stop_reason == "end_turn"
    # 5 system words + 3 user words; cache reads/writes are reported separately.
    assert final.usage.input_tokens == 8
    assert final.usage.cache_read_input_tokens == 900
    assert final.usage.cache_creation_input_tokens == 50
    assert final.usage.output_tokens == 3


async def test_raw_event_sequence(emu: Emulator) -> None:
    stream = await emu.anthropic.messages.create(
        model="claude-test", max_tokens=256, system="Be brief.", messages=USER, stream=True
    )
    events = [event async for event in stream]

    types = [e.type for e in events]
    assert types == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 6,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0]
    assert isinstance(start, RawMessageStartEvent)
    assert start.message.usage.output_tokens == 1
    assert start.message.usage.input_tokens == 2 + 3
    assert start.message.usage.cache_read_input_tokens == 0
    delta = events[-2]
    assert isinstance(delta, RawMessageDeltaEvent)
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == 6


async def test_wire_format_includes_ping_and_event_lines(emu: Emulator) -> None:
    # The SDK hides `ping`, so check the bytes on the wire directly.
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{emu.url}/v1/messages",
            json={"model": "m", "max_tokens": 10, "stream": True, "messages": USER},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = response.text.split("\n\n")
    names = [b.split("\n")[0] for b in blocks if b]
    assert names[:3] == ["event: message_start", "event: content_block_start", "event: ping"]
    assert names[-1] == "event: message_stop"
    assert all(b.split("\n")[1].startswith("data: {") for b in blocks if b)


async def test_non_streaming_message(emu: Emulator) -> None:
    emu.state.script({"reply": "Short answer.", "cached_tokens": 7})

    message = await emu.anthropic.messages.create(
        model="claude-test", max_tokens=256, system="Be brief.", messages=USER
    )

    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "claude-test"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Short answer."
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 5
    assert message.usage.cache_read_input_tokens == 7
    assert message.usage.output_tokens == 2


async def test_max_tokens_stop_reason(emu: Emulator) -> None:
    message = await emu.anthropic.messages.create(model="claude-test", max_tokens=3, messages=USER)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Emulated reply to:"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


async def test_default_reply_streams(emu: Emulator) -> None:
    async with emu.anthropic.messages.stream(
        model="claude-test", max_tokens=256, messages=USER
    ) as stream:
        text = await stream.get_final_text()
    assert text == DEFAULT_REPLY


async def test_models_list_in_anthropic_format(emu: Emulator) -> None:
    page = await emu.anthropic.models.list()
    assert [m.id for m in page.data] == list(emu.state.models)
    assert all(m.type == "model" for m in page.data)
