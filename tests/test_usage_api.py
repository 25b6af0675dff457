"""Usage aggregates (`GET /v1/usage`, `GET /v1/admin/usage`) against the real ledger."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price
from openai import AsyncOpenAI

from .stack import Stack

pytestmark = pytest.mark.integration

UNPRICED_MODEL = "chatbus-unpriced-model"  # routed to the emulator, unknown to genai-prices
TOTAL_FIELDS = (
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "total_tokens",
    "unpriced_calls",
    "estimated_calls",
)


@dataclass(frozen=True)
class Call:
    """One completed turn as the client saw it."""

    conversation_id: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int

    def expected_cost(self) -> Decimal | None:
        """The genai-prices price of the tokens the API reported (None: not in the table)."""
        try:
            calculation = calc_price(
                Usage(
                    input_tokens=self.prompt_tokens,
                    output_tokens=self.completion_tokens,
                    cache_read_tokens=self.cached_tokens,
                ),
                self.model,
                provider_id="openai",
            )
        except LookupError:
            return None
        return calculation.total_price


async def _call(
    stack: Stack,
    user: str,
    model: str,
    *,
    reply_tokens: int,
    cached_tokens: int = 0,
    conversation_id: str | None = None,
) -> Call:
    stack.emulator.script({"reply_tokens": reply_tokens, "cached_tokens": cached_tokens})
    client = AsyncOpenAI(
        api_key=stack.token(user), base_url=f"{stack.gateway_url}/v1", max_retries=0
    )
    extra = {"conversation_id": conversation_id} if conversation_id else None
    completion = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": f"count my tokens {uuid.uuid4().hex}"}],
        extra_body=extra,
    )
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.completion_tokens == reply_tokens
    assert usage.prompt_tokens_details.cached_tokens == cached_tokens
    chatbus = completion.model_extra["chatbus"]  # type: ignore[index]
    return Call(
        conversation_id=chatbus["conversation_id"],
        model=model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=cached_tokens,
    )


async def _ledger(stack: Stack, user: str) -> list[dict[str, Any]]:
    rows = await stack.fetch("SELECT * FROM usage.ledger WHERE user_id = $1 ORDER BY id", user)
    return [dict(row) for row in rows]


def _sums(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the API's totals must be for these ledger rows."""
    prompt = sum(r["prompt_tokens"] for r in rows)
    completion = sum(r["completion_tokens"] for r in rows)
    return {
        "calls": len(rows),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": sum(r["cached_tokens"] for r in rows),
        "cache_write_tokens": sum(r["cache_write_tokens"] for r in rows),
        "total_tokens": prompt + completion,
        "cost_usd": sum((r["cost_usd"] for r in rows if r["cost_usd"] is not None), Decimal(0)),
        "unpriced_calls": sum(1 for r in rows if r["cost_usd"] is None),
        "estimated_calls": sum(1 for r in rows if r["usage_estimated"]),
    }


def _totals(body: dict[str, Any]) -> dict[str, Any]:
    """API totals with the cost parsed exactly (it must be a plain decimal string)."""
    cost = body["cost_usd"]
    assert isinstance(cost, str) and "e" not in cost.lower(), cost
    return {**{name: body[name] for name in TOTAL_FIELDS}, "cost_usd": Decimal(cost)}


def _add(groups: list[dict[str, Any]]) -> dict[str, Any]:
    added: dict[str, Any] = defaultdict(int)
    for group in groups:
        for name, value in _totals(group["totals"]).items():
            added[name] += value
    return dict(added)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


async def _get(
    stack: Stack, user: str, path: str, *, role: str = "user", **params: str
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {stack.token(user, role=role)}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers) as client:
        return await client.get(path, params=params)


async def _summary(stack: Stack, user: str, path: str, **params: str) -> dict[str, Any]:
    role = "admin" if path.startswith("/v1/admin") else "user"
    response = await _get(stack, user, path, role=role, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    if body["group_by"] is not None:
        assert not body["groups_truncated"]
        assert _add(body["groups"]) == _totals(body["totals"])
    return body


async def test_usage_totals_and_groups_are_the_exact_sums_of_the_callers_ledger(
    stack: Stack,
) -> None:
    started = datetime.now(UTC)
    alice, bob = f"usage-a-{uuid.uuid4().hex[:8]}", f"usage-b-{uuid.uuid4().hex[:8]}"
    first = await _call(stack, alice, "gpt-4o-mini", reply_tokens=40)
    calls = [
        first,
        await _call(
            stack,
            alice,
            "gpt-4o-mini",
            reply_tokens=25,
            cached_tokens=3,
            conversation_id=first.conversation_id,
        ),
        await _call(stack, alice, "gpt-4o", reply_tokens=60),
        await _call(stack, alice, UNPRICED_MODEL, reply_tokens=7),
    ]
    bobs = await _call(stack, bob, "gpt-4o", reply_tokens=90)

    async def billed() -> bool:
        return len(await _ledger(stack, alice)) == 4 and len(await _ledger(stack, bob)) == 1

    await stack.wait_for(billed)
    rows, bob_rows = await _ledger(stack, alice), await _ledger(stack, bob)
    window = {"from": _iso(started - timedelta(seconds=1)), "to": _iso(datetime.now(UTC))}

    # Totals: the ledger's sums, and genai-prices' price of the tokens the API reported.
    body = await _summary(stack, alice, "/v1/usage", **window)
    totals = _totals(body["totals"])
    assert totals == _sums(rows)
    priced = [cost for cost in (call.expected_cost() for call in calls) if cost is not None]
    assert len(priced) == 3 and all(cost > 0 for cost in priced)
    assert totals["cost_usd"] == sum(priced, Decimal(0))
    assert totals["unpriced_calls"] == 1
    assert totals["prompt_tokens"] == sum(call.prompt_tokens for call in calls)
    assert totals["completion_tokens"] == 40 + 25 + 60 + 7
    assert totals["cached_tokens"] == 3
    assert body["user_id"] == alice and body["group_by"] is None and body["groups"] == []

    # Grouped by model: each group is that model's rows; highest cost first.
    by_model = await _summary(stack, alice, "/v1/usage", group_by="model", **window)
    assert [g["key"] for g in by_model["groups"]] == ["gpt-4o", "gpt-4o-mini", UNPRICED_MODEL]
    for group in by_model["groups"]:
        assert _totals(group["totals"]) == _sums([r for r in rows if r["model"] == group["key"]])
    model_costs = [Decimal(g["totals"]["cost_usd"]) for g in by_model["groups"]]
    assert model_costs == sorted(model_costs, reverse=True)

    # Grouped by conversation: the continued conversation holds two calls.
    by_conversation = await _summary(stack, alice, "/v1/usage", group_by="conversation", **window)
    expected_conversations = {call.conversation_id for call in calls}
    assert {g["key"] for g in by_conversation["groups"]} == expected_conversations
    for group in by_conversation["groups"]:
        mine = [r for r in rows if str(r["conversation_id"]) == group["key"]]
        assert _totals(group["totals"]) == _sums(mine)
    assert bobs.conversation_id not in expected_conversations

    # Grouped by UTC day, and a window given as whole dates.
    days = {
        "from": started.date().isoformat(),
        "to": (datetime.now(UTC) + timedelta(days=1)).date().isoformat(),
    }
    by_day = await _summary(stack, alice, "/v1/usage", group_by="day", **days)
    row_days = sorted({r["occurred_at"].astimezone(UTC).date().isoformat() for r in rows})
    assert [g["key"] for g in by_day["groups"]] == row_days
    for group in by_day["groups"]:
        day_rows = [
            r for r in rows if r["occurred_at"].astimezone(UTC).date().isoformat() == group["key"]
        ]
        assert _totals(group["totals"]) == _sums(day_rows)
    assert _totals(by_day["totals"]) == totals

    # Bob sees his call only, never Alice's.
    bob_body = await _summary(stack, bob, "/v1/usage", group_by="conversation", **window)
    assert _totals(bob_body["totals"]) == _sums(bob_rows)
    assert [g["key"] for g in bob_body["groups"]] == [bobs.conversation_id]
    assert _totals(bob_body["totals"])["cost_usd"] == bobs.expected_cost()


async def test_windows_are_half_open_and_default_to_this_month(stack: Stack) -> None:
    started = datetime.now(UTC)
    user = f"usage-w-{uuid.uuid4().hex[:8]}"
    await _call(stack, user, "gpt-4o-mini", reply_tokens=11)
    await _call(stack, user, "gpt-4o-mini", reply_tokens=13)

    async def billed() -> bool:
        return len(await _ledger(stack, user)) == 2

    await stack.wait_for(billed)
    rows = await _ledger(stack, user)
    first, second = sorted(rows, key=lambda r: r["occurred_at"])
    assert first["occurred_at"] < second["occurred_at"]

    ending_at_second = await _summary(
        stack,
        user,
        "/v1/usage",
        **{"from": _iso(first["occurred_at"]), "to": _iso(second["occurred_at"])},
    )
    assert _totals(ending_at_second["totals"]) == _sums([first])
    from_second = await _summary(stack, user, "/v1/usage", **{"from": _iso(second["occurred_at"])})
    assert _totals(from_second["totals"]) == _sums([second])
    # A datetime without an offset is UTC.
    naive = second["occurred_at"].astimezone(UTC).replace(tzinfo=None).isoformat()
    assert _totals((await _summary(stack, user, "/v1/usage", **{"from": naive}))["totals"]) == (
        _sums([second])
    )

    default = await _summary(stack, user, "/v1/usage")
    start, end = datetime.fromisoformat(default["start"]), datetime.fromisoformat(default["end"])
    assert start == end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert end >= second["occurred_at"]
    if start <= started:  # not when the month turned during the test
        assert _totals(default["totals"]) == _sums(rows)


async def test_admin_sees_every_user_and_others_are_refused(stack: Stack) -> None:
    started = datetime.now(UTC)
    carol, dave = f"usage-c-{uuid.uuid4().hex[:8]}", f"usage-d-{uuid.uuid4().hex[:8]}"
    await _call(stack, carol, "gpt-4o-mini", reply_tokens=5)
    await _call(stack, dave, "gpt-4o", reply_tokens=6)
    await _call(stack, dave, "gpt-4o-mini", reply_tokens=7)

    async def billed() -> bool:
        return len(await _ledger(stack, carol)) == 1 and len(await _ledger(stack, dave)) == 2

    await stack.wait_for(billed)
    window = {"from": _iso(started - timedelta(seconds=1)), "to": _iso(datetime.now(UTC))}

    refused = await _get(stack, carol, "/v1/admin/usage", group_by="user", **window)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"

    admin = f"usage-admin-{uuid.uuid4().hex[:8]}"
    everyone = await _summary(stack, admin, "/v1/admin/usage", group_by="user", **window)
    assert everyone["user_id"] is None
    groups = {g["key"]: _totals(g["totals"]) for g in everyone["groups"]}
    assert groups[carol] == _sums(await _ledger(stack, carol))
    assert groups[dave] == _sums(await _ledger(stack, dave))
    assert admin not in groups

    only_dave = await _summary(stack, admin, "/v1/admin/usage", user_id=dave, **window)
    assert only_dave["user_id"] == dave
    assert _totals(only_dave["totals"]) == groups[dave]
    own = await _summary(stack, dave, "/v1/usage", **window)
    assert _totals(own["totals"]) == groups[dave]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/usage", {"from": "last tuesday"}, "from"),
        ("/v1/usage", {"from": "2025-06-02", "to": "2025-06-01"}, "from"),
        ("/v1/usage", {"from": "2025-06-01T00:00:00Z", "to": "2025-06-01T00:00:00Z"}, "from"),
        ("/v1/usage", {"to": "2025-13-40"}, "to"),
        ("/v1/usage", {"group_by": "user"}, "group_by"),
        ("/v1/usage", {"group_by": "provider"}, "group_by"),
        ("/v1/admin/usage", {"group_by": "week"}, "group_by"),
        ("/v1/admin/usage", {"from": "not-a-date"}, "from"),
    ],
)
async def test_bad_parameters_are_422s_naming_the_field(
    stack: Stack, path: str, params: dict[str, str], field: str
) -> None:
    role = "admin" if path.startswith("/v1/admin") else "user"
    response = await _get(stack, f"usage-bad-{uuid.uuid4().hex[:8]}", path, role=role, **params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [f["field"] for f in error["fields"]] == [field]
