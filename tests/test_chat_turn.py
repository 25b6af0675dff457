"""Issue 2's acceptance test: two turns through the whole system, on real NATS and Postgres."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import nats
import pytest
from genai_prices import Usage, calc_price
from websockets.asyncio.client import connect

from .stack import MODEL, Stack
from .wsclient import read_turn, send

pytestmark = pytest.mark.integration


async def test_two_turns_are_streamed_stored_billed_embedded_and_published(stack: Stack) -> None:
    user = f"alice-{uuid.uuid4().hex[:6]}"
    outside = await nats.connect(stack.infra.nats_url)
    created: list[dict[str, object]] = []

    async def collect(msg: nats.aio.msg.Msg) -> None:
        event = json.loads(msg.data)
        if event["user_id"] == user:
            created.append(event)

    await outside.subscribe("message.created", cb=collect)
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    async with connect(stack.ws_url, additional_headers=headers) as ws:
        await send(ws, {"type": "chat.send", "id": "turn-1", "content": "What is NATS?"})
        first = await read_turn(ws)
        conversation_id = first.accepted["conversation_id"]
        # Sent the instant chat.end arrives: the history must already hold turn one.
        await send(
            ws,
            {
                "type": "chat.send",
                "id": "turn-2",
                "conversation_id": conversation_id,
                "content": "And JetStream?",
            },
        )
        second = await read_turn(ws)

    for turn in (first, second):
        assert turn.error is None and turn.end is not None
        assert [d["seq"] for d in turn.deltas] == list(range(1, len(turn.deltas) + 1))
        assert turn.end["message_id"] == turn.accepted["assistant_message_id"]
        assert turn.end["model"].startswith(MODEL) and turn.end["provider"] == "openai"

    # The provider saw turn one (question and answer) inside turn two's prompt.
    prompts = [
        r.body["messages"]
        for r in stack.emulator.requests()
        if r.body["messages"][-1]["content"] in ("What is NATS?", "And JetStream?")
    ]
    assert [m["content"] for m in prompts[-1]] == ["What is NATS?", first.text, "And JetStream?"]

    async def all_stored() -> bool:
        rows = await stack.fetch(
            "SELECT count(*) AS n FROM embeddings.message_embeddings WHERE user_id = $1", user
        )
        ledger = await stack.fetch(
            "SELECT count(*) AS n FROM usage.ledger WHERE user_id = $1", user
        )
        return rows[0]["n"] == 4 and ledger[0]["n"] == 2 and len(created) == 4

    await stack.wait_for(all_stored)

    messages = await stack.messages(uuid.UUID(conversation_id))
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1]["content"] == first.text and messages[3]["content"] == second.text
    assert str(messages[3]["id"]) == second.end["message_id"]

    ledger = await stack.fetch(
        "SELECT prompt_tokens, completion_tokens, cost_usd, model FROM usage.ledger "
        "WHERE user_id = $1 ORDER BY occurred_at",
        user,
    )
    for row, turn in zip(ledger, (first, second), strict=True):
        usage = turn.end["usage"]
        assert (row["prompt_tokens"], row["completion_tokens"]) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        expected = calc_price(
            Usage(input_tokens=row["prompt_tokens"], output_tokens=row["completion_tokens"]),
            row["model"],
            provider_id="openai",
        ).total_price
        assert row["cost_usd"] == expected > 0
        assert Decimal(turn.end["cost_usd"]) == expected

    vectors = await stack.fetch(
        "SELECT dimensions FROM embeddings.message_embeddings WHERE user_id = $1", user
    )
    assert [v["dimensions"] for v in vectors] == [384] * 4
    # The question's event is published (while the answer streams) before the answer's.
    assert [e["role"] for e in created] == ["user", "assistant", "user", "assistant"]
    await outside.close()


async def test_a_turn_is_one_trace_across_the_services(stack: Stack) -> None:
    user = f"trace-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    async with connect(stack.ws_url, additional_headers=headers) as ws:
        await send(ws, {"type": "chat.send", "id": "traced", "content": "trace me"})
        turn = await read_turn(ws)
    assert turn.end is not None
    names: set[str] = set()

    async def traced() -> bool:  # the consumers end their spans after chat.end
        spans = stack.spans.get_finished_spans()
        root = next(
            s
            for s in spans
            if s.name == "chat.turn"
            and s.attributes
            and s.attributes.get("chatbus.user_id") == user
        )
        names.update(s.name for s in spans if s.context.trace_id == root.context.trace_id)
        return all(
            any(all(part in name for part in parts) for name in names)
            for parts in (
                ("chat.requests",),
                ("message.created", "process"),
                ("usage.recorded", "process"),
            )
        )

    try:
        await stack.wait_for(traced, within_seconds=10)
    except AssertionError:
        raise AssertionError(f"spans of the turn's trace: {sorted(names)}") from None


async def test_the_question_is_stored_while_a_slow_first_token_is_awaited(stack: Stack) -> None:
    # The user's message.created waits for the first chunk, but not for a slow one.
    stack.emulator.reset()
    stack.emulator.script({"first_token_delay_ms": 5000})
    user = f"patient-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    async with connect(stack.ws_url, additional_headers=headers) as ws:
        await send(ws, {"type": "chat.send", "id": "slow", "content": "take your time"})
        turn = asyncio.create_task(read_turn(ws))

        async def question_stored() -> bool:
            rows = await stack.fetch(
                "SELECT m.id FROM conversation.messages m "
                "JOIN conversation.conversations c ON c.id = m.conversation_id "
                "WHERE c.user_id = $1 AND m.role = 'user'",
                user,
            )
            return bool(rows)

        await stack.wait_for(question_stored, within_seconds=4)
        assert not turn.done()  # still waiting for the first token
        ended = await turn
    assert ended.end is not None and ended.end["latency_ms"] >= 5000
