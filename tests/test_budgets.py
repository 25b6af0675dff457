"""Monthly budgets: worst-case reservations, refusal with budget_exceeded, settlement."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import nats
import pytest
from chatbus_contracts import subjects
from chatbus_contracts.budgets import BudgetState
from chatbus_contracts.streams import EVENTS
from websockets.asyncio.client import ClientConnection, connect

from .stack import Stack
from .wsclient import receive, send

pytestmark = pytest.mark.integration

# gpt-4o: $2.50 / M prompt tokens, $10 / M completion tokens (genai-prices). A turn with
# max_tokens=500 reserves just over $0.005 and, answering 400 tokens, costs about $0.004.
TURN = {"model": "gpt-4o", "max_tokens": 500}


async def _turn(ws: ClientConnection, content: str) -> dict[str, Any]:
    """Send a turn and return its last frame (chat.end or chat.error)."""
    await send(ws, {"type": "chat.send", "id": uuid.uuid4().hex, "content": content, **TURN})
    while (frame := await receive(ws))["type"] not in ("chat.end", "chat.error"):
        pass
    return frame


async def _budget(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/v1/budget")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_turn_that_could_exceed_the_budget_is_refused_and_nothing_stays_reserved(
    stack: Stack,
) -> None:
    user = f"budgeted-{uuid.uuid4().hex[:6]}"
    admin = {"Authorization": f"Bearer {stack.token('ops', role='admin')}"}
    mine = {"Authorization": f"Bearer {stack.token(user)}"}
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, headers=admin) as ops,
        httpx.AsyncClient(base_url=stack.gateway_url, headers=mine) as http,
    ):
        refused = await http.put(f"/v1/admin/budgets/{user}", json={"monthly_usd": "0.01"})
        assert refused.status_code == 403
        response = await ops.put(f"/v1/admin/budgets/{user}", json={"monthly_usd": "0.01"})
        assert response.status_code == 200, response.text
        assert (await _budget(http))["budget_usd"] == "0.01"

        async with connect(stack.ws_url, additional_headers=mine) as ws:
            ends = []
            for attempt in range(2):
                stack.emulator.script({"reply_tokens": 400})
                ends.append(await _turn(ws, f"question {attempt}"))
                assert ends[-1]["type"] == "chat.end", ends[-1]

                async def settled(count: int = attempt + 1) -> bool:
                    budget = await _budget(http)
                    spent = sum(Decimal(end["cost_usd"]) for end in ends[:count])
                    return budget["reserved_usd"] == "0" and Decimal(budget["spent_usd"]) == spent

                await stack.wait_for(settled, within_seconds=10)

            third = await _turn(ws, "one too many")
        assert third["type"] == "chat.error" and third["code"] == "budget_exceeded", third
        assert not third["retryable"] and "0.01" in third["message"]

        budget = await _budget(http)
    spent = sum(Decimal(end["cost_usd"]) for end in ends)
    assert Decimal("0.008") < spent < Decimal("0.0085")
    assert (Decimal(budget["spent_usd"]), budget["reserved_usd"]) == (spent, "0")
    assert Decimal(budget["remaining_usd"]) == Decimal("0.01") - spent
    # The ledger agrees with the budget's spend.
    rows = await stack.fetch("SELECT sum(cost_usd) AS s FROM usage.ledger WHERE user_id = $1", user)
    assert rows[0]["s"] == spent

    event = await _last_event(stack, subjects.USAGE_BUDGET_EXCEEDED)
    assert event["user_id"] == user and event["request_id"] == third["request_id"]
    assert Decimal(event["budget_usd"]) == Decimal("0.01")
    assert Decimal(event["spent_usd"]) == spent
    assert Decimal(event["needed_usd"]) > Decimal("0.005")


async def _last_event(stack: Stack, subject: str) -> dict[str, Any]:
    connection = await nats.connect(stack.infra.nats_url)
    try:
        msg = await connection.jetstream().get_last_msg(EVENTS.name, subject)
        event: dict[str, Any] = json.loads(msg.data or b"")
        return event
    finally:
        await connection.close()


def test_expired_reservations_no_longer_count() -> None:
    state = BudgetState.model_validate(
        {
            "spent_usd": "0.002",
            "reservations": {
                "crashed": {"amount_usd": "0.5", "expires_at": 100.0},
                "running": {"amount_usd": "0.003", "expires_at": 300.0},
            },
        }
    )
    assert state.reserved_usd(now=50.0) == Decimal("0.503")
    assert state.reserved_usd(now=200.0) == Decimal("0.003")
    assert list(state.live_reservations(now=200.0)) == ["running"]
