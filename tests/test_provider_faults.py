"""Issue 3 through the whole system: retries, cuts, stop — the emulator injects the faults."""

from __future__ import annotations

import time
import uuid

import pytest
from websockets.asyncio.client import connect

from .stack import Stack
from .wsclient import Turn, read_turn, receive, send

pytestmark = pytest.mark.integration


async def _turn(stack: Stack, user: str, content: str, **extra: object) -> Turn:
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    async with connect(stack.ws_url, additional_headers=headers) as ws:
        await send(ws, {"type": "chat.send", "id": uuid.uuid4().hex, "content": content, **extra})
        return await read_turn(ws)


def _requests_for(stack: Stack, content: str) -> list[object]:
    return [r for r in stack.emulator.requests() if content in str(r.body)]


async def test_429_with_retry_after_is_retried_after_the_wait(stack: Stack) -> None:
    stack.emulator.reset()
    stack.emulator.script({"status": 429, "retry_after": 1}, {"reply": "patience pays"})
    content = f"rate limited {uuid.uuid4().hex[:6]}"
    turn = await _turn(stack, "retry-user", content)
    assert turn.end is not None and turn.text == "patience pays"
    first, second = stack.emulator.requests()
    assert second.received_at - first.received_at >= 1.0


async def test_a_cut_before_the_first_token_is_retried(stack: Stack) -> None:
    stack.emulator.reset()
    stack.emulator.script({"cut_after_tokens": 0, "reply": "lost"}, {"reply": "second try"})
    turn = await _turn(stack, "cut-user", f"cut early {uuid.uuid4().hex[:6]}")
    assert turn.end is not None and turn.text == "second try"
    assert len(stack.emulator.requests()) == 2


async def test_a_cut_after_tokens_fails_the_turn_and_records_the_partial_text(
    stack: Stack,
) -> None:
    stack.emulator.reset()
    stack.emulator.script({"cut_after_tokens": 3, "reply": "one two three four five six"})
    user = f"cut-late-{uuid.uuid4().hex[:6]}"
    turn = await _turn(stack, user, "cut late")
    assert turn.error is not None and turn.end is None
    assert turn.text == "one two three"
    assert len(stack.emulator.requests()) == 1  # never silently restarted

    async def billed() -> bool:
        rows = await stack.fetch(
            "SELECT status, usage_estimated, completion_tokens FROM usage.ledger "
            "WHERE user_id = $1",
            user,
        )
        return [tuple(r) for r in rows] == [("failed", True, 3)]

    await stack.wait_for(billed)


async def test_stop_closes_the_upstream_stream_and_keeps_the_partial_answer(
    stack: Stack,
) -> None:
    stack.emulator.reset()
    stack.emulator.script({"reply_tokens": 500, "inter_token_delay_ms": 20})
    user = f"stopper-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    async with connect(stack.ws_url, additional_headers=headers) as ws:
        await send(ws, {"type": "chat.send", "id": "long", "content": "talk for a long time"})
        accepted = await receive(ws)
        deltas = [await receive(ws) for _ in range(5)]
        assert all(d["type"] == "chat.delta" for d in deltas)
        await send(ws, {"type": "chat.stop", "request_id": accepted["request_id"]})
        stop_sent = time.time()
        while (frame := await receive(ws))["type"] == "chat.delta":
            deltas.append(frame)
        assert frame == {
            "type": "chat.stopped",
            "request_id": accepted["request_id"],
            "message_id": accepted["assistant_message_id"],
        }
        # Stopping again: nothing runs any more.
        await send(ws, {"type": "chat.stop", "request_id": accepted["request_id"]})
        again = await receive(ws)
        assert (again["type"], again["code"]) == ("chat.error", "not_found")

    (record,) = stack.emulator.requests()
    assert record.outcome == "disconnected" and record.disconnected_at is not None
    assert record.disconnected_at - stop_sent < 0.2  # the upstream HTTP stream really closed
    partial = "".join(d["text"] for d in deltas)

    async def kept_and_billed() -> bool:
        messages = await stack.fetch(
            "SELECT content, finish_reason FROM conversation.messages "
            "WHERE user_id = $1 AND role = 'assistant'",
            user,
        )
        ledger = await stack.fetch(
            "SELECT status, completion_tokens FROM usage.ledger WHERE user_id = $1", user
        )
        return [tuple(m) for m in messages] == [(partial, "stopped")] and [
            tuple(r) for r in ledger
        ] == [("stopped", len(deltas))]

    await stack.wait_for(kept_and_billed)


async def test_three_529s_fall_back_to_the_next_model_in_the_chain(stack: Stack) -> None:
    stack.emulator.reset()
    stack.emulator.script(*[{"status": 529}] * 3, {"reply": "claude here"})
    user = f"fallback-{uuid.uuid4().hex[:6]}"
    turn = await _turn(stack, user, "who answers?", model="gpt-4o")
    assert turn.end is not None and turn.text == "claude here"
    assert (turn.end["provider"], turn.end["model"]) == ("anthropic", "claude-sonnet-4-6")
    paths = [r.path for r in stack.emulator.requests()]
    assert paths == ["/v1/chat/completions"] * 3 + ["/v1/messages"]


@pytest.mark.parametrize(
    ("model", "provider"), [("gpt-4o-mini", "openai"), ("claude-haiku", "anthropic")]
)
async def test_cached_tokens_are_reported_and_recorded(
    stack: Stack, model: str, provider: str
) -> None:
    stack.emulator.reset()
    stack.emulator.script({"reply": "cached", "cached_tokens": 7, "cache_creation_tokens": 2})
    user = f"cache-{uuid.uuid4().hex[:6]}"
    turn = await _turn(stack, user, "use the cache", model=model, system="You are terse.")
    assert turn.end is not None and turn.end["provider"] == provider
    assert turn.end["usage"]["cached_tokens"] == 7

    async def recorded() -> bool:
        rows = await stack.fetch(
            "SELECT cached_tokens, cost_usd FROM usage.ledger WHERE user_id = $1", user
        )
        return len(rows) == 1 and rows[0]["cached_tokens"] == 7 and rows[0]["cost_usd"] > 0

    await stack.wait_for(recorded)
