"""A resent `chat.send` never starts a second generation, and still gets the whole answer."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from websockets.asyncio.client import connect

from .stack import Stack
from .wsclient import read_turn, send

pytestmark = pytest.mark.integration


async def test_resending_a_chat_send_replays_the_same_turn(stack: Stack) -> None:
    user = f"resend-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    stack.emulator.script({"reply_tokens": 40, "inter_token_delay_ms": 10})
    content = f"count to forty {uuid.uuid4().hex[:6]}"
    frame = {"type": "chat.send", "id": "same-id", "content": content}
    async with connect(stack.ws_url, additional_headers=headers) as first_socket:
        await send(first_socket, frame)
        await asyncio.sleep(0.15)  # mid-stream
        async with connect(stack.ws_url, additional_headers=headers) as second_socket:
            await send(second_socket, frame)
            original, resent = await asyncio.gather(
                read_turn(first_socket), read_turn(second_socket)
            )
        # And once more after the turn is over.
        await send(first_socket, frame)
        late = await read_turn(first_socket)

    assert original.end is not None
    for copy in (resent, late):
        assert copy.accepted == original.accepted
        assert copy.deltas == original.deltas and copy.end == original.end
    generations = [
        r for r in stack.emulator.requests() if r.body["messages"][-1]["content"] == content
    ]
    assert len(generations) == 1

    async def stored() -> bool:
        rows = await stack.fetch("SELECT role FROM conversation.messages WHERE user_id = $1", user)
        return sorted(r["role"] for r in rows) == ["assistant", "user"]

    await stack.wait_for(stored)
