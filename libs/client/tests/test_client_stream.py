"""`ChatStream` without a socket: every piece once, in order, whatever the socket replays."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from chatbus_client import ChatbusError, ChatStream, Reconnect
from chatbus_contracts.common import TokenUsage
from chatbus_contracts.queries import MessageView
from chatbus_contracts.ws import (
    ChatAccepted,
    ChatDelta,
    ChatEnd,
    ChatError,
    ChatMessage,
    ChatRestart,
    ChatResume,
    ChatSend,
    ChatStopped,
    ServerFrame,
)

REQUEST_ID = uuid.uuid4()
ACCEPTED = ChatAccepted(
    id="c-1",
    request_id=REQUEST_ID,
    conversation_id=uuid.uuid4(),
    user_message_id=uuid.uuid4(),
    assistant_message_id=uuid.uuid4(),
)


def _stream() -> ChatStream:
    return ChatStream(ChatSend(id="c-1", content="hi"))


def _feed(stream: ChatStream, *frames: ServerFrame) -> None:
    for frame in frames:
        stream._feed(frame)


def _delta(seq: int, text: str) -> ChatDelta:
    return ChatDelta(request_id=REQUEST_ID, seq=seq, text=text)


def _end() -> ChatEnd:
    return ChatEnd(
        request_id=REQUEST_ID,
        message_id=ACCEPTED.assistant_message_id,
        finish_reason="stop",
        usage=TokenUsage(prompt_tokens=3, completion_tokens=4),
        cost_usd="0.0000072",
        model="gpt-4o-mini",
        provider="openai",
        latency_ms=12,
    )


async def _read(stream: ChatStream) -> list[str]:
    return [text async for text in stream]


async def test_replayed_deltas_are_dropped_and_the_end_gives_the_turn() -> None:
    stream = _stream()
    _feed(stream, ACCEPTED, _delta(1, "Hel"), _delta(2, "lo"), ACCEPTED, _delta(1, "Hel"))
    assert stream._opening_frame() == ChatResume(request_id=REQUEST_ID, after_seq=2)
    _feed(stream, _delta(2, "lo"), _delta(3, ", "), _delta(3, ", "), _delta(4, "you"), _end())
    assert await _read(stream) == ["Hel", "lo", ", ", "you"]
    turn = stream.result
    assert turn.text == "Hello, you" and turn.finish_reason == "stop"
    assert turn.request_id == REQUEST_ID and turn.conversation_id == ACCEPTED.conversation_id
    assert turn.cost_usd == Decimal("0.0000072") and turn.usage and turn.usage.total_tokens == 7
    stream._feed(_delta(5, "late"))  # nothing changes after the end
    assert stream.text == "Hello, you" and await _read(stream) == []


async def test_before_acceptance_the_same_frame_is_resent() -> None:
    stream = _stream()
    assert stream._opening_frame() is stream.frame and stream.request_id is None
    stream._feed(ACCEPTED)
    assert await stream.accepted() == ACCEPTED and stream.request_id == REQUEST_ID


async def test_expired_chunks_finish_from_the_stored_message_without_repeating() -> None:
    stream = _stream()
    _feed(stream, ACCEPTED, _delta(1, "Hel"), _delta(2, "lo"))
    stored = MessageView(
        id=ACCEPTED.assistant_message_id,
        conversation_id=ACCEPTED.conversation_id,
        request_id=REQUEST_ID,
        role="assistant",
        content="Hello world",
        parent_id=ACCEPTED.user_message_id,
        created_at=datetime.now(UTC),
        finish_reason="stop",
    )
    stream._feed(ChatMessage(request_id=REQUEST_ID, message=stored))
    assert await _read(stream) == ["Hel", "lo", " world"]
    assert stream.result.text == "Hello world" and stream.result.message == stored
    assert stream.result.end is None and stream.result.finish_reason == "stop"


async def test_a_chat_error_is_raised_from_the_iteration_and_the_result() -> None:
    stream = _stream()
    stream._feed(ACCEPTED)
    stream._feed(_delta(1, "partial"))
    error = ChatError(
        request_id=REQUEST_ID,
        code="rate_limited",
        message="slow down",
        retryable=True,
        retry_after_ms=1500,
    )
    stream._feed(error)
    received = []
    with pytest.raises(ChatbusError) as raised:
        async for text in stream:
            received.append(text)
    assert received == ["partial"]
    assert (raised.value.code, raised.value.retryable, raised.value.retry_after) == (
        "rate_limited",
        True,
        1.5,
    )
    assert raised.value.status is None and raised.value.message == "slow down"
    with pytest.raises(ChatbusError):
        _ = stream.result


async def test_a_refused_turn_fails_accepted_and_await() -> None:
    stream = _stream()
    waiting = asyncio.create_task(stream.accepted())
    await asyncio.sleep(0)
    stream._feed(ChatError(id="c-1", code="conversation_not_found", message="not found"))
    with pytest.raises(ChatbusError, match="conversation_not_found"):
        await waiting
    with pytest.raises(ChatbusError, match="conversation_not_found"):
        await stream


async def test_a_stopped_turn_keeps_the_partial_text() -> None:
    stream = _stream()
    _feed(stream, ACCEPTED, _delta(1, "so far"))
    assert not stream.done
    with pytest.raises(RuntimeError):
        _ = stream.result
    stream._feed(ChatStopped(request_id=REQUEST_ID, message_id=ACCEPTED.assistant_message_id))
    turn = await stream
    assert (turn.text, turn.stopped, turn.finish_reason, turn.end) == (
        "so far",
        True,
        "stopped",
        None,
    )


def test_backoff_starts_at_once_grows_and_is_bounded() -> None:
    policy = Reconnect(attempts=7, first_delay=0.5, max_delay=3.0, factor=2.0, jitter=0.0)
    assert list(policy.delays()) == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    jittered = list(Reconnect(attempts=5, first_delay=1.0, max_delay=1.0, jitter=0.5).delays())
    assert jittered[0] == 0 and all(0.5 <= d <= 1.0 for d in jittered[1:])
    assert list(Reconnect(attempts=0).delays()) == []
    with pytest.raises(ValueError):
        Reconnect(first_delay=2.0, max_delay=1.0)


async def test_a_restart_drops_the_text_so_far_once_per_attempt() -> None:
    stream = _stream()
    restart = ChatRestart(request_id=REQUEST_ID, seq=3, attempt=2)
    _feed(stream, ACCEPTED, _delta(1, "Bon"), _delta(2, "jour"))
    assert await anext(stream) == "Bon"  # "jour" is still unread when the restart comes
    _feed(stream, restart, _delta(4, "Hel"))
    assert stream.restarts == 1 and stream.text == "Hel"
    # A resume replays the restart it applied already: nothing changes.
    _feed(stream, restart, _delta(4, "Hel"), _delta(5, "lo"), _end())
    assert await _read(stream) == ["Hel", "lo"]
    assert stream.result.text == "Hello" and stream.restarts == 1
    assert stream.last_seq == 5
