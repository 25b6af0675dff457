"""The Python client (`chatbus_client`) against the whole system on real NATS and Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest
from chatbus_cli.embedded import free_port
from chatbus_client import ChatbusClient, ChatbusError, Reconnect
from opentelemetry.sdk.trace import TracerProvider

from .stack import MODEL, Stack, run_gateway

pytestmark = pytest.mark.integration

# Patient enough for a gateway restart, quick enough that the test does not wait long.
RESTART_PATIENCE = Reconnect(attempts=100, first_delay=0.05, max_delay=0.25)


def _user(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def _stored_message(stack: Stack, message_id: uuid.UUID) -> dict[str, Any]:
    """The stored message (waits until the conversation service has it)."""
    query = "SELECT content, finish_reason, role FROM conversation.messages WHERE id = $1"

    async def stored() -> bool:
        return bool(await stack.fetch(query, message_id))

    await stack.wait_for(stored)
    return dict((await stack.fetch(query, message_id))[0])


async def test_a_turn_streams_the_stored_answer_and_live_frames_do_not_disturb_it(
    stack: Stack,
) -> None:
    async with ChatbusClient(stack.gateway_url, stack.token(_user("py"))) as client:
        events = client.conversation_events()
        stream = client.chat("What is NATS?")
        pieces = [text async for text in stream]
        turn = stream.result
        # A second turn in the same conversation, while live frames keep coming.
        follow_up = await client.chat("And JetStream?", turn.conversation_id)
        created = await asyncio.wait_for(anext(events), 10)

    assert len(pieces) > 1 and "".join(pieces) == turn.text
    stored = await _stored_message(stack, turn.assistant_message_id)
    assert stored == {"content": turn.text, "finish_reason": "stop", "role": "assistant"}
    assert turn.end is not None and turn.end.message_id == turn.assistant_message_id
    assert turn.end.model.startswith(MODEL) and turn.usage and turn.usage.completion_tokens > 0
    assert follow_up.conversation_id == turn.conversation_id
    assert (
        follow_up.text == (await _stored_message(stack, follow_up.assistant_message_id))["content"]
    )
    assert (created.type, created.conversation_id) == ("conversation.created", turn.conversation_id)


async def test_two_turns_at_once_share_one_socket(stack: Stack) -> None:
    stack.emulator.reset()
    stack.emulator.script(
        {"reply": "first answer, slowly", "inter_token_delay_ms": 30},
        {"reply": "second answer, slowly too", "inter_token_delay_ms": 30},
    )
    async with ChatbusClient(stack.gateway_url, stack.token(_user("multi"))) as client:
        first, second = client.chat("one"), client.chat("two")
        turns = await asyncio.gather(first, second)
    assert sorted(turn.text for turn in turns) == [
        "first answer, slowly",
        "second answer, slowly too",
    ]
    assert turns[0].conversation_id != turns[1].conversation_id
    for turn in turns:
        assert turn.text == (await _stored_message(stack, turn.assistant_message_id))["content"]


async def test_the_client_survives_a_gateway_restart_mid_answer(stack: Stack) -> None:
    stack.emulator.reset()
    stack.emulator.script({"reply_tokens": 200, "inter_token_delay_ms": 15})
    port = free_port()
    tracing = TracerProvider()
    first_gateway = contextlib.AsyncExitStack()
    second_gateway = contextlib.AsyncExitStack()
    url, _ = await first_gateway.enter_async_context(run_gateway(stack.infra, tracing, port=port))
    try:
        async with ChatbusClient(
            url, stack.token(_user("restart")), reconnect=RESTART_PATIENCE
        ) as client:
            stream = client.chat("tell me a long story")
            pieces: list[str] = []
            async with asyncio.timeout(60):
                async for text in stream:
                    pieces.append(text)
                    if len(pieces) == 5:
                        await first_gateway.aclose()  # uvicorn closes the socket with 1012
                        await asyncio.sleep(0.5)  # meanwhile, connections are refused
                        assert not client.connected and not stream.done
                        await second_gateway.enter_async_context(
                            run_gateway(stack.infra, tracing, port=port)
                        )
            turn = stream.result
            reconnects = client.reconnects
    finally:
        await first_gateway.aclose()
        await second_gateway.aclose()

    assert reconnects == 1 and len(pieces) > 5
    assert "".join(pieces) == turn.text
    assert turn.text == (await _stored_message(stack, turn.assistant_message_id))["content"]
    assert len(turn.text.split()) == 200  # every scripted token, none twice
    assert turn.end is not None and turn.end.finish_reason == "stop"


async def test_stop_ends_the_turn_with_the_partial_answer_stored(stack: Stack) -> None:
    stack.emulator.reset()
    stack.emulator.script({"reply_tokens": 500, "inter_token_delay_ms": 20})
    async with ChatbusClient(stack.gateway_url, stack.token(_user("stop"))) as client:
        stream = client.chat("talk for a long time")
        pieces = [await anext(stream) for _ in range(5)]
        await stream.stop()
        turn = await stream
    assert turn.stopped and turn.finish_reason == "stopped" and turn.end is None
    assert turn.text.startswith("".join(pieces)) and len(turn.text.split()) < 500

    async def stopped_and_stored() -> bool:
        rows = await stack.fetch(
            "SELECT content, finish_reason FROM conversation.messages WHERE id = $1",
            turn.assistant_message_id,
        )
        return [tuple(row) for row in rows] == [(turn.text, "stopped")]

    await stack.wait_for(stopped_and_stored)


async def test_a_chat_error_raises_from_the_iteration(stack: Stack) -> None:
    async with ChatbusClient(stack.gateway_url, stack.token(_user("err"))) as client:
        stream = client.chat("hello?", conversation_id=uuid.uuid4())
        with pytest.raises(ChatbusError) as raised:
            async for _ in stream:
                pass
        # The socket stays usable after the error.
        turn = await client.chat("hello again")
    assert (raised.value.code, raised.value.retryable) == ("conversation_not_found", False)
    assert stream.request_id is None and turn.text


async def test_a_bad_token_fails_at_connect(stack: Stack) -> None:
    with pytest.raises(ChatbusError) as raised:
        async with ChatbusClient(stack.gateway_url, "not-a-jwt"):
            pass
    assert raised.value.code == "unauthenticated"


async def test_conversations_over_rest(stack: Stack) -> None:
    async with ChatbusClient(stack.gateway_url, stack.token(_user("rest"))) as client:
        created = await client.create_conversation("Trip planning", temperature=0.3)
        assert (created.title, created.settings.temperature) == ("Trip planning", 0.3)
        page = await client.list_conversations()
        assert [c.id for c in page.items] == [created.id] and page.next_cursor is None

        turn = await client.chat("Plan a trip to Zanzibar", created.id)
        detail = await client.get_conversation(created.id)
        assert [m.content for m in detail.messages if m.role == "assistant"] in ([], [turn.text])
        renamed = await client.rename_conversation(created.id, "Zanzibar in May")
        assert renamed.title == "Zanzibar in May"
        cleared = await client.update_conversation(created.id, temperature=None, max_tokens=50)
        assert (cleared.settings.temperature, cleared.settings.max_tokens) == (None, 50)

        async def found() -> bool:
            hits = await client.search("zanzibar")
            return any(hit.conversation_id == created.id for hit in hits)

        await stack.wait_for(found)

        with pytest.raises(ChatbusError) as invalid:
            await client.update_conversation(created.id, title="")
        assert (invalid.value.code, invalid.value.status) == ("invalid_request", 422)
        assert [f["field"] for f in invalid.value.fields] == ["title"]

        await client.delete_conversation(created.id)
        assert (await client.list_conversations()).items == []
        with pytest.raises(ChatbusError) as missing:
            await client.get_conversation(created.id)
        assert (missing.value.code, missing.value.status) == ("conversation_not_found", 404)


async def test_preferences_and_models_over_rest(stack: Stack) -> None:
    async with ChatbusClient(stack.gateway_url, stack.token(_user("prefs"))) as client:
        assert (await client.get_preferences()).default_model is None
        stored = await client.set_preferences(
            default_model="demo", default_system_prompt="Be terse"
        )
        assert await client.get_preferences() == stored
        assert (stored.default_model, stored.default_system_prompt) == ("demo", "Be terse")
        catalogue = await client.models()
    assert catalogue.default_model == MODEL
    assert MODEL in {model.id for model in catalogue.models}
