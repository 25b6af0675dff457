"""A turn whose inference process is killed mid-stream leaves no budget reservation behind."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from .stack import Stack, service_process
from .test_budgets import _budget
from .wsclient import receive, send

pytestmark = pytest.mark.integration


async def test_killed_mid_turn_the_redelivered_turn_settles_and_nothing_stays_reserved(
    stack: Stack, tmp_path: Path
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
            with service_process(stack, "chatbus-inference", tmp_path) as replica:
                stack.emulator.script({"reply_tokens": 400, "inter_token_delay_ms": 50})
                async with connect(stack.ws_url, additional_headers=mine) as ws:
                    await send(ws, {"type": "chat.send", "id": "doomed", "content": "go slowly"})
                    accepted = await receive(ws)
                    async with asyncio.timeout(30):  # includes the replica's start-up
                        while (await receive(ws))["type"] != "chat.delta":
                            pass
                held = await _budget(http)
                assert held["reserved_usd"] != "0", held
                replica.signal(signal.SIGKILL)
                await replica.exited(within_seconds=10)
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
