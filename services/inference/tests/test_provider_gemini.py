"""GeminiProvider through the real `google-genai` SDK, against recorded Gemini API responses.

A tiny local server stands in for generativelanguage.googleapis.com: it answers each
`:streamGenerateContent?alt=sse` request with the next queued reply (a recorded SSE body,
a recorded error JSON, or a body that breaks off) and records what it received.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from chatbus_inference.providers.base import (
    CompletionRequest,
    Finished,
    PromptMessage,
)
from chatbus_inference.providers.gemini import GeminiProvider
from google import genai
from google.genai import errors, types
from provider_streams import collect, failed, texts
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

RECORDINGS = Path(__file__).parent / "recordings"
MODEL = "gemini-2.5-flash"
RECORDED_TEXT = (
    "The capital of France is Paris. It sits on the Seine and has been the country's"
    " political centre for centuries."
)


def _recording(name: str) -> bytes:
    return (RECORDINGS / name).read_bytes()


def _events(body: bytes) -> list[bytes]:
    """The recorded SSE body split into its events, each with its CRLF terminator."""
    return [part + b"\r\n\r\n" for part in body.split(b"\r\n\r\n") if part]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    break_after_events: int | None = None  # send this many SSE events, then drop the connection


@dataclass
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: Any


class FakeGemini:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []

    async def handle(self, request: Request) -> Response:
        self.received.append(
            Received(
                request.url.path, request.url.query, dict(request.headers), await request.json()
            )
        )
        reply = self.replies.popleft()
        if reply.status != 200:
            return JSONResponse(json.loads(reply.body), reply.status, headers=reply.headers)
        if reply.break_after_events is None:
            return Response(reply.body, media_type="text/event-stream")
        events = _events(reply.body)[: reply.break_after_events]

        async def broken() -> AsyncIterator[bytes]:
            for event in events:
                yield event
                await asyncio.sleep(0)
            raise ConnectionAbortedError("recording breaks off here")

        return StreamingResponse(broken(), media_type="text/event-stream")


@pytest.fixture(scope="module")
async def fake_server() -> AsyncIterator[tuple[FakeGemini, str]]:
    fake = FakeGemini()
    app = Starlette(routes=[Route("/{path:path}", fake.handle, methods=["POST"])])
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the fake Gemini server did not start"
        await asyncio.sleep(0.005)
    try:
        yield fake, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def env(
    fake_server: tuple[FakeGemini, str],
) -> AsyncIterator[tuple[FakeGemini, GeminiProvider]]:
    fake, url = fake_server
    fake.replies.clear()
    fake.received.clear()
    client = genai.Client(api_key="x", http_options=types.HttpOptions(base_url=url))
    yield fake, GeminiProvider(client)
    assert not fake.replies, "a queued reply was not requested"
    await client.aio.aclose()


def _request(**fields: Any) -> CompletionRequest:
    messages = [
        PromptMessage("system", "You are terse."),
        PromptMessage("system", "Answer in English."),
        PromptMessage("user", "hello"),
        PromptMessage("assistant", "hi"),
        PromptMessage("user", "What is the capital of France?"),
    ]
    return CompletionRequest(**{"model": MODEL, "messages": messages, **fields})


async def test_recorded_stream_gives_text_usage_finish_reason_and_model(
    env: tuple[FakeGemini, GeminiProvider],
) -> None:
    fake, provider = env
    fake.replies.append(Reply(body=_recording("gemini_stream.txt")))
    events, error = await collect(provider, _request())
    assert error is None
    assert len(texts(events)) == 4
    assert "".join(texts(events)) == RECORDED_TEXT
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.finish_reason == "stop"
    assert finished.model == "gemini-2.5-flash"  # from modelVersion
    usage = finished.usage
    assert usage.prompt_tokens == 2137  # promptTokenCount already includes the cached part
    assert usage.cached_tokens == 1536
    assert usage.cache_write_tokens == 0
    assert usage.completion_tokens == 24 + 211  # candidates + thoughts (billed as output)
    assert not usage.estimated


async def test_request_wire_format(env: tuple[FakeGemini, GeminiProvider]) -> None:
    fake, provider = env
    fake.replies.append(Reply(body=_recording("gemini_stream.txt")))
    _, error = await collect(provider, _request(temperature=0.25, max_tokens=64))
    assert error is None
    [received] = fake.received
    assert received.path.endswith(f"/models/{MODEL}:streamGenerateContent")
    assert received.query == "alt=sse"
    assert received.headers["x-goog-api-key"] == "x"
    assert received.body == {
        "contents": [
            {"role": "user", "parts": [{"text": "hello"}]},
            {"role": "model", "parts": [{"text": "hi"}]},
            {"role": "user", "parts": [{"text": "What is the capital of France?"}]},
        ],
        "systemInstruction": {
            "parts": [{"text": "You are terse."}, {"text": "Answer in English."}]
        },
        "generationConfig": {"temperature": 0.25, "maxOutputTokens": 64},
    }


async def test_unset_options_are_not_sent(env: tuple[FakeGemini, GeminiProvider]) -> None:
    fake, provider = env
    fake.replies.append(Reply(body=_recording("gemini_stream.txt")))
    request = CompletionRequest(model=MODEL, messages=[PromptMessage("user", "hi")])
    _, error = await collect(provider, request)
    assert error is None
    body = fake.received[0].body
    assert "systemInstruction" not in body
    assert not body.get("generationConfig")


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
    ],
)
async def test_finish_reasons(
    env: tuple[FakeGemini, GeminiProvider], raw: str, mapped: str
) -> None:
    fake, provider = env
    body = _recording("gemini_stream.txt")
    assert body.count(b'"finishReason": "STOP"') == 1
    fake.replies.append(Reply(body=body.replace(b'"STOP"', f'"{raw}"'.encode())))
    events, error = await collect(provider, _request())
    assert error is None
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.finish_reason == mapped


async def test_429_is_rate_limited_and_retryable(env: tuple[FakeGemini, GeminiProvider]) -> None:
    fake, provider = env
    fake.replies.append(
        Reply(status=429, body=_recording("gemini_error_429.json"), headers={"retry-after": "7"})
    )
    events, error = await failed(provider, _request())
    assert events == []
    assert error.code == "rate_limited" and error.retryable
    assert isinstance(error.__cause__, errors.ClientError) and error.__cause__.code == 429
    assert error.retry_after_seconds == 7.0  # the SDK error keeps the HTTP response


@pytest.mark.parametrize(
    ("status", "recording", "code", "retryable"),
    [
        (400, "gemini_error_400_api_key.json", "auth_failed", False),
        (400, "gemini_error_400_context.json", "context_too_long", False),
        (503, "gemini_error_503.json", "provider_unavailable", True),
    ],
)
async def test_error_statuses_map_to_stable_codes(
    env: tuple[FakeGemini, GeminiProvider],
    status: int,
    recording: str,
    code: str,
    retryable: bool,
) -> None:
    fake, provider = env
    fake.replies.append(Reply(status=status, body=_recording(recording)))
    events, error = await failed(provider, _request())
    assert events == []
    assert (error.code, error.retryable) == (code, retryable)


async def test_plain_400_is_invalid_request(env: tuple[FakeGemini, GeminiProvider]) -> None:
    fake, provider = env
    body = {"error": {"code": 400, "message": "Bad temperature.", "status": "INVALID_ARGUMENT"}}
    fake.replies.append(Reply(status=400, body=json.dumps(body).encode()))
    _, error = await failed(provider, _request())
    assert error.code == "invalid_request" and not error.retryable


async def test_connection_dropped_after_tokens_is_not_retryable(
    env: tuple[FakeGemini, GeminiProvider],
) -> None:
    fake, provider = env
    fake.replies.append(Reply(body=_recording("gemini_stream.txt"), break_after_events=2))
    events, error = await failed(provider, _request())
    assert texts(events) == ["The capital of France is", " Paris. It sits on the Seine"]
    assert error.code == "provider_error" and not error.retryable
    # Usage is cumulative per chunk, so the last one seen is the usage so far.
    assert error.partial_usage is not None and error.partial_usage.estimated
    assert error.partial_usage.completion_tokens == 14 + 211


async def test_connection_dropped_before_any_token_is_retryable(
    env: tuple[FakeGemini, GeminiProvider],
) -> None:
    fake, provider = env
    fake.replies.append(Reply(body=_recording("gemini_stream.txt"), break_after_events=0))
    events, error = await failed(provider, _request())
    assert events == []
    assert error.code == "provider_unavailable" and error.retryable


async def test_malformed_chunk_after_tokens_is_not_retryable(
    env: tuple[FakeGemini, GeminiProvider],
) -> None:
    fake, provider = env
    first = _events(_recording("gemini_stream.txt"))[0]
    fake.replies.append(Reply(body=first + b'data: {"candidates": [{"content": \r\n\r\n'))
    events, error = await failed(provider, _request())
    assert texts(events) == ["The capital of France is"]
    assert error.code == "provider_error" and not error.retryable


async def test_stream_without_finish_reason_is_an_error(
    env: tuple[FakeGemini, GeminiProvider],
) -> None:
    fake, provider = env
    fake.replies.append(Reply(body=b"".join(_events(_recording("gemini_stream.txt"))[:3])))
    events, error = await failed(provider, _request())
    assert len(texts(events)) == 3 and not any(isinstance(e, Finished) for e in events)
    assert error.code == "provider_error" and not error.retryable
