"""A turn whose inference process is killed mid-stream leaves no budget reservation behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from .stack import MODEL, Stack
from .test_budgets import _budget
from .wsclient import receive, send

pytestmark = pytest.mark.integration


def _spawn_inference(stack: Stack) -> subprocess.Popen[bytes]:
    """An inference replica as its own process, on the stack's NATS and emulator."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CHATBUS_NATS_URL": stack.infra.nats_url,
        "CHATBUS_DATABASE_URL": stack.infra.database_url,
        "OPENAI_API_KEY": "emulator",
        "OPENAI_BASE_URL": f"{stack.emulator_url}/v1",
        "CHATBUS_DEFAULT_MODEL": MODEL,
        "CHATBUS_TITLE_MODEL": "demo",
    }
    executable = Path(sys.executable).parent / "chatbus-inference"
    return subprocess.Popen([str(executable)], env=env, stdout=subprocess.DEVNULL)


async def test_killed_mid_turn_the_redelivered_turn_settles_and_nothing_stays_reserved(
    stack: Stack,
) -> None:
    user = f"crashy-{uuid.uuid4().hex[:6]}"
    admin = {"Authorization": f"Bearer {stack.token('ops', role='admin')}"}
    mine = {"Authorization": f"Bearer {stack.token(user)}"}
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, headers=admin) as ops,
        httpx.AsyncClient(base_url=stack.gateway_url, headers=mine) as http,
    ):
        await ops.put(f"/v1/admin/budgets/{user}", json={"monthly_usd": "1"})
        async with stack.without_inference():
            replica = _spawn_inference(stack)
            try:
                stack.emulator.script({"reply_tokens": 400, "inter_token_delay_ms": 50})
                async with connect(stack.ws_url, additional_headers=mine) as ws:
                    await send(ws, {"type": "chat.send", "id": "doomed", "content": "go slowly"})
                    accepted = await receive(ws)
                    async with asyncio.timeout(30):  # includes the replica's start-up
                        while (await receive(ws))["type"] != "chat.delta":
                            pass
                held = await _budget(http)
                assert held["reserved_usd"] != "0", held
                replica.send_signal(signal.SIGKILL)
                replica.wait(10)
            finally:
                replica.kill()
        # A new replica gets the request once its ack wait has passed, runs it again under
        # the same reservation, and the usage service settles it.

        async def settled() -> bool:
            budget = await _budget(http)
            return budget["reserved_usd"] == "0" and budget["spent_usd"] != "0"

        await stack.wait_for(settled, within_seconds=90)
        rows = await stack.fetch(
            "SELECT request_id, cost_usd FROM usage.ledger WHERE user_id = $1 AND kind = 'chat'",
            user,
        )
        assert [str(row["request_id"]) for row in rows] == [accepted["request_id"]]
        assert (await _budget(http))["spent_usd"] == str(rows[0]["cost_usd"].normalize())
