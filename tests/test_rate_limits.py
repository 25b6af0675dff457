"""Rate limits per user, exact across gateway replicas (role limits: tests/stack.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from websockets.asyncio.client import ClientConnection, connect

from .stack import MODEL, Stack, run_gateway
from .wsclient import receive, send

pytestmark = pytest.mark.integration


def _auth(stack: Stack, user: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token(user, role=role)}"}


async def _answers(ws: ClientConnection, ids: set[str]) -> dict[str, dict[str, Any]]:
    """The `chat.accepted` or `chat.error` answering each send id in `ids`."""
    answers: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(30):
        while len(answers) < len(ids):
            frame = await receive(ws)
            if frame["type"] in ("chat.accepted", "chat.error") and frame.get("id") in ids:
                answers[frame["id"]] = frame
    return answers


async def test_two_gateways_sharing_a_limit_of_10_per_minute_accept_exactly_10_of_30(
    stack: Stack,
) -> None:
    user = f"limited-{uuid.uuid4().hex[:6]}"
    headers = _auth(stack, user, "limited")
    async with run_gateway(stack.infra, TracerProvider()) as (other_url, _):
        other_ws_url = other_url.replace("http://", "ws://") + "/v1/ws"
        async with (
            connect(stack.ws_url, additional_headers=headers) as first,
            connect(other_ws_url, additional_headers=headers) as second,
        ):
            sends = {first: [f"a-{i}" for i in range(15)], second: [f"b-{i}" for i in range(15)]}
            frames = [
                json.dumps({"type": "chat.send", "id": send_id, "content": "hello"})
                for ws, ids in sends.items()
                for send_id in ids
            ]
            sockets = [ws for ws, ids in sends.items() for _ in ids]
            await asyncio.gather(
                *(ws.send(frame) for ws, frame in zip(sockets, frames, strict=True))
            )
            answers = {}
            for ws, ids in sends.items():
                answers |= await _answers(ws, set(ids))

            accepted = [a for a in answers.values() if a["type"] == "chat.accepted"]
            refused = [a for a in answers.values() if a["type"] == "chat.error"]
            assert len(accepted) == 10 and len(refused) == 20
            assert {r["code"] for r in refused} == {"rate_limited"}
            assert all(r["retryable"] and 0 < r["retry_after_ms"] <= 60_000 for r in refused)

            # A resend of an accepted turn is that turn again, not a new request: admitted.
            again = accepted[0]
            ws = first if again["id"].startswith("a-") else second
            await send(ws, {"type": "chat.send", "id": again["id"], "content": "hello"})
            assert (await _answers(ws, {again["id"]}))[again["id"]] == again
            # The socket stays usable after refusals.
            await send(ws, {"type": "ping"})
            while (await receive(ws))["type"] != "pong":
                pass

    # Exactly the accepted turns were stored, each once.
    async def answers_stored() -> int:
        rows = await stack.fetch(
            "SELECT count(*) AS n FROM conversation.messages "
            "WHERE user_id = $1 AND role = 'assistant'",
            user,
        )
        return int(rows[0]["n"])

    async def all_stored() -> bool:
        return await answers_stored() >= 10

    await stack.wait_for(all_stored)
    await asyncio.sleep(0.5)
    assert await answers_stored() == 10


async def test_rest_over_the_limit_answers_429_with_retry_after(stack: Stack) -> None:
    user = f"limited-{uuid.uuid4().hex[:6]}"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=_auth(stack, user, "limited"), timeout=30
    ) as http:
        statuses = [
            (await http.post("/v1/chat/completions", json=body)).status_code for _ in range(10)
        ]
        refused = await http.post("/v1/chat/completions", json=body)
    assert statuses == [200] * 10
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["type"] == "rate_limit_error"


async def test_tokens_per_day_refuse_once_the_billed_tokens_reach_the_limit(stack: Stack) -> None:
    user = f"frugal-{uuid.uuid4().hex[:6]}"
    stack.emulator.script({"reply_tokens": 60})
    async with connect(stack.ws_url, additional_headers=_auth(stack, user, "frugal")) as ws:
        await send(ws, {"type": "chat.send", "id": "t-1", "content": "spend my tokens"})
        while (frame := await receive(ws))["type"] != "chat.end":
            pass
        assert frame["usage"]["total_tokens"] >= 60

        async def refused() -> bool:
            # The usage service counts the tokens shortly after the turn is billed.
            await send(ws, {"type": "chat.send", "id": f"t-{uuid.uuid4().hex}", "content": "more"})
            answer = await receive(ws)
            if answer["type"] == "chat.accepted":
                while (await receive(ws))["type"] != "chat.end":
                    pass
                return False
            assert answer["code"] == "rate_limited", answer
            # Refused until the next UTC midnight.
            assert 0 < answer["retry_after_ms"] <= 24 * 3600 * 1000
            return True

        await stack.wait_for(refused, within_seconds=10)
