"""API keys (`cb-…`): created by `chatbus keys`, accepted on REST, SSE and the socket."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import openai
import pytest
from chatbus_cli.main import app
from openai import AsyncOpenAI
from typer.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .stack import MODEL, Stack
from .wsclient import read_turn, send

pytestmark = pytest.mark.integration


async def _cli(stack: Stack, *args: str) -> tuple[int, str]:
    """Run `chatbus ARGS --nats-url …` in a thread (the test's loop serves the stack)."""
    argv = [*args, "--nats-url", stack.infra.nats_url]
    result = await asyncio.get_running_loop().run_in_executor(
        None, lambda: CliRunner().invoke(app, argv, catch_exceptions=False)
    )
    return result.exit_code, result.stdout


async def _create_key(stack: Stack, user: str, *extra: str) -> dict[str, Any]:
    code, out = await _cli(stack, "keys", "create", "--user", user, "--json", *extra)
    assert code == 0, out
    created: dict[str, Any] = json.loads(out)
    return created


def _auth(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def test_a_key_works_on_rest_sse_and_the_socket_as_its_user(stack: Stack) -> None:
    user = f"keyed-{uuid.uuid4().hex[:6]}"
    created = await _create_key(stack, user, "--name", "ci")
    key = created["key"]
    assert key.startswith("cb-") and created["user_id"] == user and created["name"] == "ci"

    client = AsyncOpenAI(api_key=key, base_url=f"{stack.gateway_url}/v1", max_retries=0)
    stream = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi via key"}], stream=True
    )
    text = "".join(
        [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    )
    assert text

    async with connect(stack.ws_url, additional_headers=_auth(key)) as ws:
        await send(ws, {"type": "chat.send", "id": "key-1", "content": "hi via socket"})
        turn = await read_turn(ws)
    assert turn.end is not None

    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=_auth(key)) as http:
        listed = (await http.get("/v1/conversations")).json()["items"]
    # Both turns are the key owner's conversations, and nobody else's.
    owners = await stack.fetch(
        "SELECT DISTINCT user_id FROM conversation.conversations WHERE id = ANY($1::uuid[])",
        [uuid.UUID(item["id"]) for item in listed],
    )
    assert len(listed) == 2 and [row["user_id"] for row in owners] == [user]


async def test_list_never_shows_secrets_and_a_revoked_key_is_refused_at_once(stack: Stack) -> None:
    user = f"revoked-{uuid.uuid4().hex[:6]}"
    key = (await _create_key(stack, user))["key"]
    other = (await _create_key(stack, f"{user}-other"))["key"]

    code, out = await _cli(stack, "keys", "list", "--user", user, "--json")
    assert code == 0
    listed = json.loads(out)
    assert [row["user_id"] for row in listed] == [user]
    assert "secret_sha256" not in listed[0] and key not in out and key.split("_", 1)[1] not in out

    code, out = await _cli(stack, "keys", "revoke", listed[0]["key_id"])
    assert code == 0, out
    client = AsyncOpenAI(api_key=key, base_url=f"{stack.gateway_url}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "still there?"}]
        )
    assert refused.value.status_code == 401
    assert refused.value.body == {
        "message": "invalid credential: unknown or revoked API key",
        "type": "authentication_error",
        "param": None,
        "code": "unauthenticated",
    }
    with pytest.raises(ConnectionClosed) as closed:
        async with connect(stack.ws_url, additional_headers=_auth(key)) as ws:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    # Revoking one key leaves the others working; an unknown key id is an error.
    async with connect(stack.ws_url, additional_headers=_auth(other)) as ws:
        await send(ws, {"type": "ping"})
        assert json.loads(await ws.recv()) == {"type": "pong"}
    code, _ = await _cli(stack, "keys", "revoke", listed[0]["key_id"])
    assert code == 1


@pytest.mark.parametrize(
    "credential",
    ["cb-", "cb-0123456789ab", "cb-0123456789ab_guess", "cb-NOTHEXNOTHEX_x", "not-a-jwt"],
)
async def test_forged_and_malformed_keys_answer_401(stack: Stack, credential: str) -> None:

    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        response = await http.get("/v1/conversations", headers=_auth(credential))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


async def test_a_wrong_secret_for_a_real_key_id_is_refused(stack: Stack) -> None:
    key = (await _create_key(stack, f"forged-{uuid.uuid4().hex[:6]}"))["key"]
    key_id = key.split("_", 1)[0]

    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        response = await http.get("/v1/conversations", headers=_auth(f"{key_id}_wrong-secret"))
    assert response.status_code == 401
