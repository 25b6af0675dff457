"""The ledger against genai-prices: 200 turns over 3 models, then every event twice more."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import nats
import pytest
from chatbus_contracts import subjects
from chatbus_contracts.streams import EVENTS
from genai_prices import Usage, calc_price

from .stack import Stack

pytestmark = pytest.mark.integration

# chatbus model -> (provider, upstream model) as the built-in catalogue routes them.
MODELS = {
    "gpt-4o-mini": ("openai", "gpt-4o-mini"),
    "gpt-4o": ("openai", "gpt-4o"),
    "claude-haiku": ("anthropic", "claude-haiku-4-5"),
}
TURNS = 200


def _price(usage: dict[str, Any], model: str) -> Decimal:
    provider, upstream = MODELS[model]
    return calc_price(
        Usage(
            input_tokens=usage["prompt_tokens"],
            output_tokens=usage["completion_tokens"],
            cache_read_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
        ),
        upstream,
        provider_id=provider,
    ).total_price


async def _ledger(stack: Stack, user: str) -> list[dict[str, Any]]:
    rows = await stack.fetch(
        "SELECT message_id, model, prompt_tokens, completion_tokens, cost_usd "
        "FROM usage.ledger WHERE user_id = $1 AND kind = 'chat'",
        user,
    )
    return [dict(row) for row in rows]


async def _republish_usage_events(stack: Stack, user: str, times: int) -> int:
    """Publish every `usage.recorded` of `user` again `times` times, past JetStream dedupe."""
    connection = await nats.connect(stack.infra.nats_url)
    js = connection.jetstream()
    republished = 0
    try:
        subscription = await js.subscribe(
            subjects.USAGE_RECORDED, stream=EVENTS.name, ordered_consumer=True
        )
        info = await js.stream_info(EVENTS.name, subjects_filter=subjects.USAGE_RECORDED)
        total = (info.state.subjects or {}).get(subjects.USAGE_RECORDED, 0)
        for _ in range(total):
            msg = await subscription.next_msg(timeout=5)
            if json.loads(msg.data)["user_id"] != user:
                continue
            for copy in range(times):
                headers = {"Nats-Msg-Id": f"again-{copy}-{uuid.uuid4().hex}"}
                await js.publish(msg.subject, msg.data, headers=headers)
                republished += 1
    finally:
        await connection.close()
    return republished


async def test_200_turns_over_3_models_bill_exactly_what_genai_prices_says_even_redelivered(
    stack: Stack,
) -> None:
    user = f"billed-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    limit = asyncio.Semaphore(16)
    models = list(MODELS)

    async def turn(http: httpx.AsyncClient, index: int) -> tuple[str, str, dict[str, Any]]:
        model = models[index % len(models)]
        body = {"model": model, "messages": [{"role": "user", "content": f"count {index}"}]}
        async with limit:
            response = await http.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        completion = response.json()
        return completion["chatbus"]["message_id"], model, completion["usage"]

    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers, timeout=60) as http:
        answers = await asyncio.gather(*(turn(http, index) for index in range(TURNS)))
        expected = {message_id: (model, usage) for message_id, model, usage in answers}
        expected_total = sum(_price(usage, model) for model, usage in expected.values())

        async def all_billed() -> bool:
            return len(await _ledger(stack, user)) >= TURNS

        await stack.wait_for(all_billed, within_seconds=60)
        rows = await _ledger(stack, user)
        assert len(rows) == TURNS and {str(r["message_id"]) for r in rows} == set(expected)
        for row in rows:
            model, usage = expected[str(row["message_id"])]
            assert (row["prompt_tokens"], row["completion_tokens"]) == (
                usage["prompt_tokens"],
                usage["completion_tokens"],
            )
            assert row["model"] == MODELS[model][1]
            assert row["cost_usd"] == _price(usage, model)
        assert sum(row["cost_usd"] for row in rows) == expected_total
        assert {row["model"] for row in rows} == {upstream for _, upstream in MODELS.values()}

        async def spent() -> Decimal:
            return Decimal((await http.get("/v1/budget")).json()["spent_usd"])

        # The monthly spend is settled after each ledger row is committed.
        async def all_settled() -> bool:
            return await spent() == expected_total

        await stack.wait_for(all_settled, within_seconds=10)

        # Every usage event delivered twice more: no new row, the same totals and spend.
        assert await _republish_usage_events(stack, user, times=2) == 2 * TURNS
        await asyncio.sleep(2)  # the usage consumer has had time to see all 400 copies
        rows = await _ledger(stack, user)
        assert len(rows) == TURNS
        assert sum(row["cost_usd"] for row in rows) == expected_total
        assert await spent() == expected_total
