"""Reconnect and resume against a scripted stand-in gateway: each connection plays one script.

The stand-in drops sockets exactly where a test wants (before `chat.accepted`, between
deltas) and checks the frames the client sends on the next connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from chatbus_client import ChatbusClient, ChatbusError, Reconnect
from websockets.asyncio.server import ServerConnection, serve

Script = Callable[[ServerConnection], Awaitable[None]]
FAST = Reconnect(attempts=5, first_delay=0.01, max_delay=0.05)
REQUEST_ID = str(uuid.uuid4())
CONVERSATION_ID = str(uuid.uuid4())
ASSISTANT_ID = str(uuid.uuid4())


class StandIn:
    """A WebSocket server on a free port; connection n runs `scripts[n]`."""

    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.connections = 0
        self.received: list[dict[str, Any]] = []
        self.failures: list[BaseException] = []
        self.port = 0

    async def _handle(self, ws: ServerConnection) -> None:
        script = self.scripts[self.connections]
        self.connections += 1
        try:
            await script(ws)
        except Exception as error:  # reported by the test, not lost in the server's log
            self.failures.append(error)
            raise

    @contextlib.asynccontextmanager
    async def running(self, port: int = 0) -> AsyncIterator[str]:
        async with serve(self._handle, "127.0.0.1", port) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            yield f"http://127.0.0.1:{self.port}"

    async def expect(self, ws: ServerConnection, frame_type: str) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await ws.recv())
        self.received.append(frame)
        assert frame["type"] == frame_type, frame
        if frame_type == "ping":
            await ws.send(json.dumps({"type": "pong"}))
        return frame


def _accepted(client_id: str) -> str:
    return json.dumps(
        {
            "type": "chat.accepted",
            "id": client_id,
            "request_id": REQUEST_ID,
            "conversation_id": CONVERSATION_ID,
            "user_message_id": str(uuid.uuid4()),
            "assistant_message_id": ASSISTANT_ID,
        }
    )


def _delta(seq: int, text: str) -> str:
    return json.dumps({"type": "chat.delta", "request_id": REQUEST_ID, "seq": seq, "text": text})


def _end() -> str:
    usage = {"prompt_tokens": 3, "completion_tokens": 5}
    return json.dumps(
        {
            "type": "chat.end",
            "request_id": REQUEST_ID,
            "message_id": ASSISTANT_ID,
            "finish_reason": "stop",
            "usage": usage,
            "cost_usd": None,
            "model": "m",
            "provider": "p",
            "latency_ms": 1,
        }
    )


async def test_a_drop_before_acceptance_resends_and_a_drop_mid_answer_resumes() -> None:
    gateway = StandIn([])

    async def first(ws: ServerConnection) -> None:
        await gateway.expect(ws, "ping")
        await ws.send(json.dumps({"type": "future.frame", "x": 1}))  # unknown: ignored
        await gateway.expect(ws, "chat.send")
        await ws.close(1012)  # restarting before chat.accepted

    async def second(ws: ServerConnection) -> None:
        send = await gateway.expect(ws, "chat.send")
        await ws.send(_accepted(send["id"]))
        live = {"type": "conversation.deleted", "conversation_id": str(uuid.uuid4())}
        await ws.send(json.dumps(live))  # live frames may come between a turn's frames
        for seq, text in enumerate(["a", "b", "c"], start=1):
            await ws.send(_delta(seq, text))
        await ws.close(1012)

    async def third(ws: ServerConnection) -> None:
        resume = await gateway.expect(ws, "chat.resume")
        assert resume == {"type": "chat.resume", "request_id": REQUEST_ID, "after_seq": 3}
        for seq, text in [(2, "b"), (3, "c"), (4, "d"), (5, "e")]:  # overlaps: dropped
            await ws.send(_delta(seq, text))
        await ws.send(_end())
        await ws.wait_closed()

    gateway.scripts = [first, second, third]
    async with gateway.running() as url, ChatbusClient(url, "t", reconnect=FAST) as client:
        events = client.conversation_events()
        stream = client.chat("hi", client_id="same-id")
        pieces = [text async for text in stream]
        assert pieces == ["a", "b", "c", "d", "e"]
        assert stream.result.text == "abcde" and stream.result.end is not None
        assert client.reconnects == 2
        event = await asyncio.wait_for(anext(events), 1)
        assert event.type == "conversation.deleted"
    sends = [frame for frame in gateway.received if frame["type"] == "chat.send"]
    assert sends == [{"type": "chat.send", "id": "same-id", "content": "hi"}] * 2
    assert gateway.failures == []


async def test_expired_chunks_finish_from_the_stored_answer_after_refused_connections() -> None:
    gateway = StandIn([])

    async def first(ws: ServerConnection) -> None:
        await gateway.expect(ws, "ping")
        send = await gateway.expect(ws, "chat.send")
        await ws.send(_accepted(send["id"]))
        await ws.send(_delta(1, "Hel"))
        await ws.send(_delta(2, "lo"))

    async def second(ws: ServerConnection) -> None:
        resume = await gateway.expect(ws, "chat.resume")
        assert resume["after_seq"] == 2
        message = {
            "id": ASSISTANT_ID,
            "conversation_id": CONVERSATION_ID,
            "request_id": REQUEST_ID,
            "role": "assistant",
            "content": "Hello world",
            "parent_id": None,
            "created_at": "2025-06-01T09:30:00Z",
            "finish_reason": "stop",
        }
        await ws.send(
            json.dumps({"type": "chat.message", "request_id": REQUEST_ID, "message": message})
        )
        await ws.wait_closed()

    gateway.scripts = [first, second]
    patient = Reconnect(attempts=40, first_delay=0.02, max_delay=0.05)
    async with contextlib.AsyncExitStack() as server:
        url = await server.enter_async_context(gateway.running())
        async with ChatbusClient(url, "t", reconnect=patient) as client:
            stream = client.chat("hi")
            pieces = [await anext(stream), await anext(stream)]
            await server.aclose()  # the gateway goes away: connections are refused a while
            await asyncio.sleep(0.3)
            assert not client.connected
            async with gateway.running(gateway.port):
                pieces += [text async for text in stream]
    assert pieces == ["Hel", "lo", " world"]
    assert stream.result.text == "Hello world" and stream.result.message is not None
    assert gateway.failures == []


async def test_a_gateway_that_stays_away_fails_the_turn_with_connection_lost() -> None:
    gateway = StandIn([])

    async def only(ws: ServerConnection) -> None:
        await gateway.expect(ws, "ping")
        send = await gateway.expect(ws, "chat.send")
        await ws.send(_accepted(send["id"]))

    gateway.scripts = [only]
    async with contextlib.AsyncExitStack() as server:
        url = await server.enter_async_context(gateway.running())
        async with ChatbusClient(url, "t", reconnect=FAST) as client:
            stream = client.chat("hi")
            await stream.accepted()
            await server.aclose()
            with pytest.raises(ChatbusError) as raised:
                await asyncio.wait_for(stream.collect(), 5)
    assert raised.value.code == "connection_lost" and raised.value.retryable


async def test_a_refused_token_fails_at_connect_with_unauthenticated() -> None:
    async def refuse(ws: ServerConnection) -> None:
        await ws.close(4401, "invalid token: expired")

    gateway = StandIn([refuse])
    async with gateway.running() as url:
        with pytest.raises(ChatbusError) as raised:
            async with ChatbusClient(url, "expired"):
                pass
    assert (raised.value.code, raised.value.message) == (
        "unauthenticated",
        "invalid token: expired",
    )


async def test_an_unavailable_resume_is_asked_again() -> None:
    gateway = StandIn([])

    async def first(ws: ServerConnection) -> None:
        await gateway.expect(ws, "ping")
        send = await gateway.expect(ws, "chat.send")
        await ws.send(_accepted(send["id"]))
        await ws.send(_delta(1, "x"))
        await ws.close(1012)

    async def second(ws: ServerConnection) -> None:
        await gateway.expect(ws, "chat.resume")
        error = {
            "type": "chat.error",
            "request_id": REQUEST_ID,
            "code": "unavailable",
            "message": "could not look the request up; resume again",
            "retryable": True,
        }
        await ws.send(json.dumps(error))
        again = await gateway.expect(ws, "chat.resume")
        assert again["after_seq"] == 1
        await ws.send(_delta(2, "y"))
        await ws.send(_end())
        await ws.wait_closed()

    gateway.scripts = [first, second]
    async with gateway.running() as url, ChatbusClient(url, "t", reconnect=FAST) as client:
        turn = await asyncio.wait_for(client.chat("hi"), 5)
    assert turn.text == "xy" and gateway.failures == []
