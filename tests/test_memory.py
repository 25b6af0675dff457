"""Retrieval memory: a turn with memory on sees the user's relevant earlier message."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from .eventbus import connected_bus, publish_conversation, publish_message
from .stack import Stack, unique_user
from .wsclient import read_turn, send

pytestmark = pytest.mark.integration

EARLIER = "My daughter Saoirse is severely allergic to peanuts."
UNRELATED = "The quarterly tax return is due at the end of the month."


def _system_context(stack: Stack, question: str) -> list[str]:
    """System messages the provider got with the turn that asked `question`."""
    for record in stack.emulator.requests():
        messages = record.body.get("messages") or []
        if messages and messages[-1]["content"] == question:
            return [m["content"] for m in messages if m["role"] == "system"]
    raise AssertionError(f"the provider never got {question!r}")


async def _ask(stack: Stack, user: str, conversation_id: str, question: str, **extra: Any) -> None:
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    async with connect(stack.ws_url, additional_headers=headers) as ws:
        frame = {"type": "chat.send", "id": uuid.uuid4().hex, "content": question}
        await send(ws, frame | {"conversation_id": conversation_id} | extra)
        turn = await read_turn(ws)
    assert turn.error is None, turn.error


async def test_memory_puts_the_relevant_earlier_message_in_the_prompt(stack: Stack) -> None:
    user = unique_user("memory")
    async with connected_bus(stack) as bus:
        earlier_conversation = await publish_conversation(bus, user, "family")
        earlier_id = await publish_message(bus, user, earlier_conversation, EARLIER)
        unrelated_id = await publish_message(bus, user, earlier_conversation, UNRELATED)
    await _embedded(stack, user, 2)
    async with stack.api(user) as http:
        created = await http.post("/v1/conversations", json={"memory": True})
        assert created.status_code == 201, created.text
        conversation = created.json()
        assert conversation["settings"]["memory"] is True

        question = "Which snacks can I pack for my daughter's school trip?"
        await _ask(stack, user, conversation["id"], question)
        context = _system_context(stack, question)
        assert len(context) == 1 and EARLIER in context[0], context
        assert UNRELATED not in context[0]

        answer = (await _assistant_messages(stack, http, conversation["id"], 1))[0]
        assert answer["context_message_ids"] == [str(earlier_id)]
        assert str(unrelated_id) not in answer["context_message_ids"]

        # The same question with memory off for the turn: no context, none recorded.
        again = "Which snacks can I pack for my daughter's school trip? (again)"
        await _ask(stack, user, conversation["id"], again, memory=False)
        assert _system_context(stack, again) == []
        last = (await _assistant_messages(stack, http, conversation["id"], 2))[-1]
        assert last["context_message_ids"] == []


async def test_memory_never_recalls_another_users_messages(stack: Stack) -> None:
    owner, other = unique_user("owner"), unique_user("other")
    async with connected_bus(stack) as bus:
        conversation_id = await publish_conversation(bus, owner, "family")
        await publish_message(bus, owner, conversation_id, EARLIER)
    await _embedded(stack, owner, 1)
    async with stack.api(other) as http:
        conversation = (await http.post("/v1/conversations", json={"memory": True})).json()
    question = "Is Saoirse allergic to peanuts? Which snacks are safe?"
    await _ask(stack, other, conversation["id"], question)
    assert all(EARLIER not in c for c in _system_context(stack, question))


async def _assistant_messages(
    stack: Stack, http: httpx.AsyncClient, conversation_id: str, count: int
) -> list[dict[str, Any]]:
    """The conversation's assistant messages once `count` are stored (a GET waits only
    1 s for the projection; a loaded CI machine can take longer)."""
    messages: list[dict[str, Any]] = []

    async def stored() -> bool:
        detail = (await http.get(f"/v1/conversations/{conversation_id}")).json()
        messages[:] = [m for m in detail["messages"] if m["role"] == "assistant"]
        return len(messages) >= count

    await stack.wait_for(stored, within_seconds=15)
    return messages


async def _embedded(stack: Stack, user: str, count: int) -> None:
    """Wait until the embeddings service has stored `count` messages of `user`."""

    async def stored() -> bool:
        rows = await stack.fetch(
            "SELECT count(*) AS n FROM embeddings.message_embeddings WHERE user_id = $1", user
        )
        return bool(rows[0]["n"] == count)

    await stack.wait_for(stored, within_seconds=60)
