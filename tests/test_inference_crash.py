"""An inference replica killed mid-answer: another one answers again, and nobody sees both."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from chatbus_client import ChatbusClient, ChatbusError
from chatbus_contracts import subjects
from chatbus_contracts.chunks import DeltaChunk
from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.common import TokenUsage, derived_id, utc_now
from chatbus_contracts.events import ConversationCreated, Event, MessageCreated
from chatbus_contracts.streams import CHAT_REQUESTS, INFERENCE_CONSUMER
from chatbus_runtime.bus import publish_event
from faststream.nats import NatsBroker
from websockets.asyncio.client import connect

from .eventbus import connected_bus
from .stack import Stack, service_process, unique_user
from .wsclient import receive, send

pytestmark = pytest.mark.integration

DOOMED = " ".join(f"doomed{i}" for i in range(300))  # 15 s at 50 ms a token
ANSWER = " ".join(f"final{i}" for i in range(60))


async def _replayed(stack: Stack, user: str, request_id: uuid.UUID, after_seq: int) -> list[Any]:
    """Every frame a `chat.resume` delivers, up to the end of the turn."""
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    frames = []
    async with connect(stack.ws_url, additional_headers=headers) as ws:
        resume = {"type": "chat.resume", "request_id": str(request_id), "after_seq": after_seq}
        await send(ws, resume)
        while (frame := await receive(ws))["type"] not in ("chat.end", "chat.error"):
            frames.append(frame)
        frames.append(frame)
    return frames


async def test_a_replica_killed_mid_answer_restarts_it_on_another(
    stack: Stack, tmp_path: Path
) -> None:
    user = f"crash-{uuid.uuid4().hex[:6]}"
    stack.emulator.reset()
    stack.emulator.script(
        {"reply": DOOMED, "inter_token_delay_ms": 50},
        {"reply": ANSWER, "inter_token_delay_ms": 5},
    )
    async with ChatbusClient(stack.gateway_url, stack.token(user)) as client:
        with service_process(stack, "chatbus-inference", tmp_path) as doomed:
            async with stack.without_inference():  # the request can only go to `doomed`
                stream = client.chat("tell me everything")
                async with asyncio.timeout(30):  # includes the replica's start-up
                    seen = [await anext(stream) for _ in range(3)]
            # The in-process replica is back; the one answering dies without a word.
            doomed.signal(signal.SIGKILL)
            await doomed.exited(within_seconds=10)
            rest: list[str] = []  # what a UI shows once the answer started over
            async with asyncio.timeout(60):  # the ack wait (10 s), then the new answer
                async for piece in stream:
                    if stream.restarts:  # before it, the dead replica's last pieces
                        rest.append(piece)
        turn = stream.result

    assert "".join(seen).split() == DOOMED.split()[:3]
    assert stream.restarts == 1
    assert turn.text == ANSWER and "".join(rest) == ANSWER  # only the new answer's pieces
    assert turn.end is not None and turn.end.finish_reason == "stop"

    async def stored() -> bool:
        return len(await stack.messages(turn.conversation_id)) == 2

    await stack.wait_for(stored)
    rows = await stack.messages(turn.conversation_id)
    assert [(row["role"], row["content"]) for row in rows] == [
        ("user", "tell me everything"),
        ("assistant", ANSWER),
    ]
    assert rows[1]["id"] == turn.assistant_message_id

    # A resume from the start, or from inside the dead attempt, gets the final attempt only.
    for after_seq in (0, 2):
        frames = await _replayed(stack, user, turn.request_id, after_seq)
        restart, deltas, end = frames[0], frames[1:-1], frames[-1]
        assert (restart["type"], restart["attempt"]) == ("chat.restart", 2)
        first = restart["seq"] + 1
        assert [d["seq"] for d in deltas] == list(range(first, first + len(deltas)))
        assert "".join(d["text"] for d in deltas) == ANSWER
        assert (end["type"], end["message_id"]) == ("chat.end", str(turn.assistant_message_id))


STORED = ["the answer ", "that was ", "stored"]


async def _die_after_storing(bus: NatsBroker, request: GenerateReply) -> None:
    """What a replica leaves that dies after storing its answer, before the turn's end."""
    await _publish_deltas(bus, request, STORED)
    events: list[Event] = [
        ConversationCreated(
            event_id=derived_id(request.request_id, subjects.CONVERSATION_CREATED),
            user_id=request.user_id,
            conversation_id=request.conversation_id,
            title="stored",
            created_at=request.accepted_at,
        )
    ]
    for role, message_id, content, parent in (
        ("user", request.user_message_id, request.content, None),
        ("assistant", request.assistant_message_id, "".join(STORED), request.user_message_id),
    ):
        events.append(
            MessageCreated(
                event_id=derived_id(request.request_id, subjects.MESSAGE_CREATED, role),
                user_id=request.user_id,
                message_id=message_id,
                conversation_id=request.conversation_id,
                request_id=request.request_id,
                role=role,
                content=content,
                parent_id=parent,
                created_at=utc_now(),
                model="gpt-4o-mini",
                provider="openai",
                usage=TokenUsage(prompt_tokens=5, completion_tokens=3) if parent else None,
                finish_reason="stop" if parent else None,
                latency_ms=40 if parent else None,
            )
        )
    for event in events:
        await publish_event(bus, event)


async def test_a_replica_that_died_after_storing_its_answer_is_not_answered_again(
    stack: Stack,
) -> None:
    user = unique_user("stored")
    stack.emulator.reset()
    stack.emulator.script({"reply": "a second, different answer"})
    async with ChatbusClient(stack.gateway_url, stack.token(user)) as client:
        async with connected_bus(stack) as bus, stack.without_inference():
            stream = client.chat("what is stored?", model="gpt-4o-mini")
            request = await _take_request(bus)
            await _die_after_storing(bus, request)
        # A live replica gets the request again after the ack wait (10 s).
        async with asyncio.timeout(60):
            pieces = [piece async for piece in stream]
        turn = stream.result

    assert stream.restarts == 0
    assert "".join(pieces) == turn.text == "".join(STORED)
    assert turn.end is not None and turn.end.message_id == request.assistant_message_id
    assert (turn.end.finish_reason, turn.end.usage.completion_tokens) == ("stop", 3)
    assert stack.emulator.requests() == []  # nothing was generated again

    async def billed() -> bool:
        rows = await stack.fetch(
            "SELECT completion_tokens FROM usage.ledger WHERE request_id = $1",
            request.request_id,
        )
        return [row["completion_tokens"] for row in rows] == [3]

    await stack.wait_for(billed)
    rows = await stack.messages(request.conversation_id)
    assert [(row["role"], row["content"]) for row in rows] == [
        ("user", "what is stored?"),
        ("assistant", "".join(STORED)),
    ]


async def test_a_retry_whose_plan_fails_ends_with_an_error_the_client_gets(stack: Stack) -> None:
    user = unique_user("refail")
    stack.emulator.reset()
    async with ChatbusClient(stack.gateway_url, stack.token(user)) as client:
        first = client.chat("start a conversation")
        async for _ in first:
            pass
        conversation_id = first.result.conversation_id
        async with connected_bus(stack) as bus, stack.without_inference():
            # It continues after a message that does not exist: only planning can tell.
            stream = client.chat(
                "and then?", conversation_id, parent_message_id=uuid.uuid4(), model="gpt-4o-mini"
            )
            request = await _take_request(bus)
            # A replica that streamed a little, then died.
            await _publish_deltas(bus, request, ["part 1 ", "part 2 "])
        with pytest.raises(ChatbusError) as failed:
            async with asyncio.timeout(60):  # the ack wait (10 s), then the retry
                async for _ in stream:
                    pass

    assert failed.value.code == "message_not_found"
    assert stream.restarts == 1  # the retry announced itself before its plan failed


async def _take_request(bus: NatsBroker) -> GenerateReply:
    """Take the next chat request as a replica would (and never ack it)."""
    js = bus.connection.jetstream()
    pull = await js.pull_subscribe_bind(INFERENCE_CONSUMER.durable, CHAT_REQUESTS.name)
    [taken] = await pull.fetch(1, timeout=10)
    return GenerateReply.model_validate_json(taken.data)


async def _publish_deltas(bus: NatsBroker, request: GenerateReply, texts: list[str]) -> None:
    """Delta chunks 1, 2, … of `request`, as a replica streams them."""
    for seq, text in enumerate(texts, 1):
        chunk = DeltaChunk(request_id=request.request_id, seq=seq, text=text)
        await bus.connection.publish(request.reply_subject, chunk.model_dump_json().encode())
