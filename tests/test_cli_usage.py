"""`chatbus usage`: the caller's usage from the gateway, as a table or JSON."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import httpx
import pytest
from chatbus_cli.main import app
from typer.testing import CliRunner

from .stack import Stack

pytestmark = pytest.mark.integration


async def _cli(*args: str) -> tuple[int, str, str]:
    result = await asyncio.get_running_loop().run_in_executor(
        None, lambda: CliRunner().invoke(app, list(args), catch_exceptions=False)
    )
    return result.exit_code, result.stdout, result.stderr


async def test_usage_by_model_as_json_and_as_a_table(stack: Stack) -> None:
    user = f"counted-{uuid.uuid4().hex[:6]}"
    token = stack.token(user)
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        for model in ("gpt-4o-mini", "gpt-4o", "gpt-4o"):
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            assert (await http.post("/v1/chat/completions", json=body)).status_code == 200

    async def billed() -> bool:
        rows = await stack.fetch("SELECT 1 FROM usage.ledger WHERE user_id = $1", user)
        return len(rows) == 3

    await stack.wait_for(billed)
    rows = await stack.fetch(
        "SELECT model, count(*) AS calls, sum(cost_usd) AS cost FROM usage.ledger "
        "WHERE user_id = $1 GROUP BY model",
        user,
    )
    by_model = {row["model"]: (row["calls"], row["cost"]) for row in rows}

    base = ["usage", "--url", stack.gateway_url, "--token", token, "--group-by", "model"]
    code, out, _ = await _cli(*base, "--json")
    assert code == 0, out
    summary = json.loads(out)
    groups = {
        g["key"]: (g["totals"]["calls"], Decimal(g["totals"]["cost_usd"]))
        for g in summary["groups"]
    }
    assert groups == by_model
    assert Decimal(summary["totals"]["cost_usd"]) == sum(cost for _, cost in by_model.values())

    code, out, _ = await _cli(*base)
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split("\t") == [
        "key",
        "calls",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
    ]
    assert [line.split("\t")[:2] for line in lines] == [
        ["gpt-4o", "2"],
        ["gpt-4o-mini", "1"],
        ["total", "3"],
    ]


async def test_a_bad_token_is_an_error_on_stderr(stack: Stack) -> None:
    code, out, err = await _cli("usage", "--url", stack.gateway_url, "--token", "cb-nope")
    assert code == 1 and out == ""
    assert err.startswith("error: unauthenticated")
