"""Bad input, authentication and REST isolation at the gateway, on the real stack."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .stack import Stack
from .wsclient import read_turn, receive, send

pytestmark = pytest.mark.integration


async def _assert_usable(ws: ClientConnection) -> None:
    await send(ws, {"type": "ping"})
    assert (await receive(ws))["type"] == "pong"


@pytest.mark.parametrize(
    ("raw", "code", "frame_id"),
    [
        ("{not json", "invalid_json", None),
        (json.dumps(["a", "list"]), "invalid_frame", None),
        (json.dumps({"type": "chat.fly", "id": "x1"}), "unknown_type", "x1"),
        (json.dumps({"type": "chat.send", "id": "x2"}), "invalid_frame", "x2"),
        (json.dumps({"type": "chat.send", "id": "x3", "content": 42}), "invalid_frame", "x3"),
        (
            json.dumps({"type": "chat.send", "id": "x4", "content": "hi", "temperature": "hot"}),
            "invalid_frame",
            "x4",
        ),
        (
            json.dumps({"type": "chat.send", "id": "x5", "content": "hi", "surprise": 1}),
            "invalid_frame",
            "x5",
        ),
        (
            json.dumps({"type": "chat.send", "id": "x6", "content": "x" * (32 * 1024 + 1)}),
            "content_too_large",
            "x6",
        ),
    ],
)
async def test_bad_frames_get_a_coded_error_and_the_socket_stays_usable(
    stack: Stack, raw: str, code: str, frame_id: str | None
) -> None:
    headers = {"Authorization": f"Bearer {stack.token('bob')}"}
    async with connect(stack.ws_url, additional_headers=headers, max_size=None) as ws:
        await ws.send(raw)
        error = await receive(ws)
        assert error["type"] == "chat.error"
        assert (error["code"], error["id"]) == (code, frame_id)
        assert error["message"]
        await _assert_usable(ws)


async def test_another_users_conversation_is_not_found(stack: Stack) -> None:
    owner = {"Authorization": f"Bearer {stack.token('carol')}"}
    async with connect(stack.ws_url, additional_headers=owner) as ws:
        await send(ws, {"type": "chat.send", "id": "c1", "content": "mine"})
        turn = await read_turn(ws)
    conversation_id = turn.accepted["conversation_id"]
    intruder = {"Authorization": f"Bearer {stack.token('mallory')}"}
    async with connect(stack.ws_url, additional_headers=intruder) as ws:
        for target in (conversation_id, str(uuid.uuid4())):
            await send(
                ws,
                {
                    "type": "chat.send",
                    "id": f"m-{target}",
                    "conversation_id": target,
                    "content": "let me in",
                },
            )
            error = await receive(ws)
            assert (error["type"], error["code"], error["id"]) == (
                "chat.error",
                "conversation_not_found",
                f"m-{target}",
            )
        await _assert_usable(ws)
    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        foreign = await http.get(f"/v1/conversations/{conversation_id}", headers=intruder)
        assert foreign.status_code == 404
        assert foreign.json()["error"]["code"] == "conversation_not_found"
        own = await http.get(f"/v1/conversations/{conversation_id}", headers=owner)
        assert own.status_code == 200
        assert [m["role"] for m in own.json()["messages"]] == ["user", "assistant"]
        listed = await http.get("/v1/conversations", headers=owner)
        assert conversation_id in [c["id"] for c in listed.json()["items"]]
        others = await http.get("/v1/conversations", headers=intruder)
        assert conversation_id not in [c["id"] for c in others.json()["items"]]


async def _close_code(stack: Stack, headers: dict[str, str], first: str | None) -> int | None:
    async with connect(stack.ws_url, additional_headers=headers) as ws:
        if first is not None:
            await ws.send(first)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        return ws.close_code


@pytest.mark.parametrize(
    "case", ["bad-signature", "expired", "no-token", "garbage-first-frame", "bad-auth-frame"]
)
async def test_bad_tokens_close_with_4401(stack: Stack, case: str) -> None:
    forged = stack.token("eve").rsplit(".", 1)[0] + ".forged"
    expired = stack.token("eve", ttl_seconds=-10)
    headers, first = {
        "bad-signature": ({"Authorization": f"Bearer {forged}"}, None),
        "expired": ({"Authorization": f"Bearer {expired}"}, None),
        "no-token": ({}, None),
        "garbage-first-frame": ({}, "hello"),
        "bad-auth-frame": ({}, json.dumps({"type": "auth", "token": expired})),
    }[case]
    assert await _close_code(stack, headers, first) == 4401


async def test_browser_auth_frame_then_chat(stack: Stack) -> None:
    async with connect(stack.ws_url) as ws:
        await send(ws, {"type": "auth", "token": stack.token("dave")})
        await send(ws, {"type": "chat.send", "id": "b1", "content": "from a browser"})
        turn = await read_turn(ws)
    assert turn.end is not None and turn.text


async def test_rest_needs_a_token_and_reports_ready(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        missing = await http.get("/v1/conversations")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "unauthenticated"
        bad_limit = await http.get(
            "/v1/conversations?limit=1000", headers={"Authorization": f"Bearer {stack.token('x')}"}
        )
        assert bad_limit.status_code == 422
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
