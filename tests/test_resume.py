"""`chat.resume`: the rest of a turn on any socket of its user, from any gateway process."""

from __future__ import annotations

import uuid
from typing import Any

import nats
import pytest
from chatbus_contracts import subjects
from chatbus_contracts.streams import CHAT_CHUNKS
from opentelemetry.sdk.trace import TracerProvider
from websockets.asyncio.client import ClientConnection, connect

from .stack import Stack, run_gateway
from .wsclient import read_turn, receive, send

pytestmark = pytest.mark.integration


def _headers(stack: Stack, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token(user)}"}


async def _read_until_end(ws: ClientConnection) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = await receive(ws)
        frames.append(frame)
        if frame["type"] in ("chat.end", "chat.error", "chat.stopped", "chat.message"):
            return frames


async def stored_row(stack: Stack, message_id: str) -> dict[str, Any]:
    """The stored message `message_id` (waits until the conversation service has it)."""

    async def stored() -> bool:
        rows = await stack.fetch(
            "SELECT 1 FROM conversation.messages WHERE id = $1", uuid.UUID(message_id)
        )
        return bool(rows)

    await stack.wait_for(stored)
    rows = await stack.fetch(
        "SELECT content, prompt_tokens, completion_tokens, conversation_id "
        "FROM conversation.messages WHERE id = $1",
        uuid.UUID(message_id),
    )
    return dict(rows[0])


async def _stored_answer(stack: Stack, message_id: str) -> str:
    return str((await stored_row(stack, message_id))["content"])


async def test_a_dropped_socket_resumes_mid_stream_on_another_gateway(stack: Stack) -> None:
    user = f"resumer-{uuid.uuid4().hex[:6]}"
    stack.emulator.script({"reply_tokens": 80, "inter_token_delay_ms": 15})
    async with connect(stack.ws_url, additional_headers=_headers(stack, user)) as ws:
        await send(ws, {"type": "chat.send", "id": "long-1", "content": "tell me a long story"})
        accepted = await receive(ws)
        seen = [await receive(ws) for _ in range(5)]
    assert [f["seq"] for f in seen] == [1, 2, 3, 4, 5]

    async with run_gateway(stack.infra, TracerProvider()) as (other_url, _):
        other_ws_url = other_url.replace("http://", "ws://") + "/v1/ws"
        async with connect(other_ws_url, additional_headers=_headers(stack, user)) as ws:
            resume = {"type": "chat.resume", "request_id": accepted["request_id"], "after_seq": 5}
            await send(ws, resume)
            rest = await _read_until_end(ws)
    deltas, end = rest[:-1], rest[-1]
    assert end["type"] == "chat.end", end
    assert [d["seq"] for d in deltas] == list(range(6, 6 + len(deltas)))
    text = "".join(f["text"] for f in seen + deltas)
    assert text == await _stored_answer(stack, end["message_id"])
    assert end["message_id"] == accepted["assistant_message_id"]


async def test_resume_after_the_end_replays_the_same_end_and_other_users_get_not_found(
    stack: Stack,
) -> None:
    user = f"replayer-{uuid.uuid4().hex[:6]}"
    async with connect(stack.ws_url, additional_headers=_headers(stack, user)) as ws:
        await send(ws, {"type": "chat.send", "id": "done-1", "content": "short one"})
        turn = await read_turn(ws)
        request_id = turn.accepted["request_id"]
        await send(ws, {"type": "chat.resume", "request_id": request_id, "after_seq": 0})
        replay = await _read_until_end(ws)
        assert [f["text"] for f in replay[:-1]] == [d["text"] for d in turn.deltas]
        assert replay[-1] == turn.end
        last = turn.deltas[-1]["seq"] + 1  # the client saw everything: the end comes again
        await send(ws, {"type": "chat.resume", "request_id": request_id, "after_seq": last})
        assert await _read_until_end(ws) == [turn.end]

    async with connect(stack.ws_url, additional_headers=_headers(stack, "intruder")) as ws:
        for unknown in (request_id, str(uuid.uuid4())):
            await send(ws, {"type": "chat.resume", "request_id": unknown, "after_seq": 0})
            error = await receive(ws)
            assert (error["type"], error["code"], error["request_id"]) == (
                "chat.error",
                "not_found",
                unknown,
            )


async def test_resume_after_the_chunks_expired_answers_with_the_stored_message(
    stack: Stack,
) -> None:
    user = f"late-{uuid.uuid4().hex[:6]}"
    async with connect(stack.ws_url, additional_headers=_headers(stack, user)) as ws:
        await send(ws, {"type": "chat.send", "id": "old-1", "content": "remember this"})
        turn = await read_turn(ws)
    request_id = turn.accepted["request_id"]
    stored = await _stored_answer(stack, turn.accepted["assistant_message_id"])
    bus = await nats.connect(stack.infra.nats_url)
    try:  # what max_age does after 15 minutes
        await bus.jetstream().purge_stream(
            CHAT_CHUNKS.name, subject=subjects.chat_chunks_request_wildcard(uuid.UUID(request_id))
        )
    finally:
        await bus.close()
    async with connect(stack.ws_url, additional_headers=_headers(stack, user)) as ws:
        await send(ws, {"type": "chat.resume", "request_id": request_id, "after_seq": 3})
        frame = await receive(ws)
    assert frame["type"] == "chat.message"
    assert frame["message"]["content"] == stored == turn.text
    assert frame["message"]["id"] == turn.accepted["assistant_message_id"]
