"""REST error bodies become `ChatbusError`; the query of `usage()`."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest
from chatbus_client import ChatbusError, RestClient


def _client(handler: httpx.MockTransport) -> RestClient:
    return RestClient("http://gateway.test/", "tok", transport=handler)


async def test_an_error_body_gives_code_message_status_and_fields() -> None:
    body = {
        "error": {
            "code": "invalid_request",
            "message": "title: too long",
            "fields": [{"field": "title", "message": "too long"}],
        }
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(422, json=body))
    async with _client(transport) as client:
        with pytest.raises(ChatbusError) as raised:
            await client.rename_conversation("3f77", "x" * 300)
    error = raised.value
    assert (error.code, error.message, error.status, error.retryable) == (
        "invalid_request",
        "title: too long",
        422,
        False,
    )
    assert error.fields == [{"field": "title", "message": "too long"}]


async def test_a_body_that_is_no_error_object_still_raises_with_the_status() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="Bad Gateway"))
    async with _client(transport) as client:
        with pytest.raises(ChatbusError) as raised:
            await client.get_preferences()
    assert (raised.value.code, raised.value.status, raised.value.retryable) == (
        "http_502",
        502,
        True,
    )


SUMMARY = {
    "user_id": "alice",
    "start": "2025-06-01T00:00:00Z",
    "end": "2025-07-01T00:00:00Z",
    "group_by": "model",
    "totals": {
        "calls": 1,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "total_tokens": 15,
        "cost_usd": "0.000423",
        "unpriced_calls": 0,
        "estimated_calls": 0,
    },
    "groups": [],
}


async def test_usage_sends_from_to_group_by_and_the_token() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=SUMMARY)

    async with _client(httpx.MockTransport(answer)) as client:
        summary = await client.usage(from_=date(2025, 6, 1), group_by="model")
    assert summary.totals.cost_usd == Decimal("0.000423") and summary.groups == []
    (request,) = seen
    assert request.url.path == "/v1/usage"
    assert dict(request.url.params) == {"from": "2025-06-01", "group_by": "model"}
    assert request.headers["authorization"] == "Bearer tok"


async def test_update_sends_only_the_fields_given_and_none_clears() -> None:
    bodies: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(
            404, json={"error": {"code": "conversation_not_found", "message": "x"}}
        )

    async with _client(httpx.MockTransport(answer)) as client:
        with pytest.raises(ChatbusError, match="conversation_not_found"):
            await client.update_conversation("c", system_prompt=None, max_tokens=50)
    assert bodies == [b'{"system_prompt":null,"max_tokens":50}']


async def test_an_unreachable_gateway_is_connection_failed() -> None:
    async with RestClient("http://127.0.0.1:1", "tok") as client:
        with pytest.raises(ChatbusError) as raised:
            await client.list_conversations()
    assert raised.value.code == "connection_failed" and raised.value.status is None
