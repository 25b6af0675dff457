"""The embeddings service stopped for 30 s under load: afterwards every message has exactly
one vector (the backlog waits in JetStream and drains in batches)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from chatbus_embeddings.app import EmbeddingsService
from websockets.asyncio.client import connect

from .stack import Stack
from .wsclient import read_turn, send

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 30.0
SENDERS = 4


async def _chat_until(stack: Stack, user: str, deadline: float) -> int:
    """Turns, one after another on one socket, until `deadline`; how many completed."""
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    completed = 0
    async with connect(stack.ws_url, additional_headers=headers) as ws:
        conversation_id = None
        while time.monotonic() < deadline:
            frame = {"type": "chat.send", "id": uuid.uuid4().hex, "content": f"turn {completed}"}
            if conversation_id:
                frame["conversation_id"] = conversation_id
            await send(ws, frame)
            turn = await read_turn(ws)
            assert turn.error is None, turn.error
            conversation_id = turn.accepted["conversation_id"]
            completed += 1
    return completed


async def test_every_message_is_embedded_once_after_an_outage(stack: Stack) -> None:
    user = f"outage-{uuid.uuid4().hex[:8]}"
    async with stack.paused(EmbeddingsService):
        deadline = time.monotonic() + OUTAGE_SECONDS
        turns = await asyncio.gather(*(_chat_until(stack, user, deadline) for _ in range(SENDERS)))
        stored = await stack.fetch(
            "SELECT count(*) AS n FROM embeddings.message_embeddings WHERE user_id = $1", user
        )
        assert stored[0]["n"] == 0  # nothing embedded while the service was down
    assert sum(turns) >= 20

    async def messages() -> set[uuid.UUID]:
        rows = await stack.fetch("SELECT id FROM conversation.messages WHERE user_id = $1", user)
        return {row["id"] for row in rows}

    async def caught_up() -> bool:
        rows = await stack.fetch(
            "SELECT count(*) AS n FROM embeddings.message_embeddings WHERE user_id = $1", user
        )
        return bool(rows[0]["n"] >= 2 * sum(turns))

    await stack.wait_for(caught_up, within_seconds=120)
    rows = await stack.fetch(
        "SELECT message_id, count(*) AS n FROM embeddings.message_embeddings "
        "WHERE user_id = $1 GROUP BY message_id",
        user,
    )
    assert all(row["n"] == 1 for row in rows)
    assert {row["message_id"] for row in rows} == await messages()
    assert len(rows) == 2 * sum(turns)  # each turn: the question and its answer
