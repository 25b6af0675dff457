"""`POST /v1/chat/completions` in the OpenAI wire format, over the same path as a socket turn.

A call becomes a `chat.send` (durable in JetStream, answered by inference, stored,
billed, published as events). Without the chatbus extension `conversation_id` it is
stateless: the request's messages are the prompt and the call is stored as a new
conversation of its own. With it, the last user message continues that conversation
and the stored history is the prompt. `Idempotency-Key` makes a retry replay the same
answer instead of starting another generation.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from chatbus_contracts.chunks import DeltaChunk, EndChunk, ErrorChunk, ReplyChunk
from chatbus_contracts.commands import PriorMessage
from chatbus_contracts.common import format_usd
from chatbus_contracts.errors import ErrorCode
from chatbus_contracts.ws import ChatSend
from fastapi import APIRouter, Header, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .deps import CurrentIdentity, State
from .errors import ApiError
from .replay import turn_chunks
from .state import GatewayState
from .turns import AcceptedTurn, TurnRefused

router = APIRouter(tags=["openai-compatible"])

_HTTP_STATUS: dict[str, int] = {
    ErrorCode.CONVERSATION_NOT_FOUND: 404,
    ErrorCode.MESSAGE_NOT_FOUND: 404,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.CONTEXT_TOO_LONG: 400,
    ErrorCode.CONTENT_TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.BUDGET_EXCEEDED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.PROVIDER_UNAVAILABLE: 503,
    ErrorCode.PROVIDER_TIMEOUT: 504,
    ErrorCode.AUTH_FAILED: 502,
}
_FINISH = {"stopped": "stop", "error": "stop"}


class InputMessage(BaseModel):
    """One message of the request; text parts only."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text; `BadRequest` for a non-text part."""
        if isinstance(self.content, list):
            if any(part.get("type") != "text" for part in self.content):
                raise BadRequest("only text content parts are supported", "messages")
            return "".join(str(part.get("text", "")) for part in self.content)
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """The OpenAI request body; fields chatbus does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200)
    messages: list[InputMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1)
    tools: list[Any] | None = None
    conversation_id: UUID | None = Field(
        default=None, description="chatbus extension: continue this stored conversation."
    )


class BadRequest(ApiError):
    """A request chatbus cannot serve (400, OpenAI error shape)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(
            status.HTTP_400_BAD_REQUEST,
            ErrorCode.INVALID_REQUEST,
            message,
            fields=[{"field": param, "message": message}] if param else None,
        )


def _as_send(
    body: ChatCompletionRequest, idempotency_key: str | None
) -> tuple[ChatSend, list[PriorMessage] | None]:
    """The turn of a request, and its stateless prompt (None: use the stored history)."""
    if body.n not in (None, 1):
        raise BadRequest("n must be 1", "n")
    if body.tools:
        raise BadRequest("tools are not supported by chatbus yet", "tools")
    system = "\n\n".join(m.text() for m in body.messages if m.role in ("system", "developer"))
    talk = [m for m in body.messages if m.role not in ("system", "developer")]
    if any(m.role == "tool" for m in talk):
        raise BadRequest("tool messages are not supported by chatbus yet", "messages")
    if not talk or talk[-1].role != "user":
        raise BadRequest("the last message must be a user message", "messages")
    try:
        send = ChatSend(
            id=idempotency_key or f"openai-{uuid4().hex}",
            conversation_id=body.conversation_id,
            content=talk[-1].text(),
            model=body.model,
            system=system or None,
            temperature=body.temperature,
            max_tokens=body.max_completion_tokens or body.max_tokens,
        )
    except ValidationError as error:
        raise BadRequest(str(error.errors()[0]["msg"]), "messages") from error
    if body.conversation_id is not None:
        return send, None
    prior = [PriorMessage.model_validate({"role": m.role, "content": m.text()}) for m in talk[:-1]]
    return send, prior


def _refusal(code: str, message: str, *, retry_after_ms: int | None = None) -> ApiError:
    headers = None
    if retry_after_ms is not None:
        headers = {"Retry-After": str(math.ceil(retry_after_ms / 1000))}
    return ApiError(_HTTP_STATUS.get(code, 502), code, message, headers=headers)


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest,
    identity: CurrentIdentity,
    state: State,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> JSONResponse | StreamingResponse:
    """Create a chat completion, streamed (SSE) or whole; stored and billed like any turn."""
    send, prior = _as_send(body, idempotency_key)
    try:
        turn = await state.acceptor.accept(identity, send, prior_messages=prior)
    except TurnRefused as refused:
        raise _refusal(
            refused.code, refused.message, retry_after_ms=refused.retry_after_ms
        ) from refused
    if turn.duplicate:
        state.router.close(turn.frame.request_id, turn.queue)
    chunks = turn_chunks(state.broker, turn.frame.request_id, turn.queue, duplicate=turn.duplicate)
    headers = {
        "X-Chatbus-Request-Id": str(turn.frame.request_id),
        "X-Chatbus-Conversation-Id": str(turn.frame.conversation_id),
    }
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(
            _sse(state, turn, chunks, body.model, include_usage),
            media_type="text/event-stream",
            headers=headers | {"Cache-Control": "no-cache"},
        )
    try:
        completion = await _whole(turn, chunks, body.model)
    finally:
        state.router.close(turn.frame.request_id, turn.queue)
    return JSONResponse(completion, headers=headers)


def _envelope(turn: AcceptedTurn, model: str, kind: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{turn.frame.request_id.hex}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
    }


def _usage(end: EndChunk) -> dict[str, Any]:
    return {
        "prompt_tokens": end.usage.prompt_tokens,
        "completion_tokens": end.usage.completion_tokens,
        "total_tokens": end.usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": end.usage.cached_tokens},
    }


def _chatbus(turn: AcceptedTurn, end: EndChunk) -> dict[str, Any]:
    """The chatbus extension of a response (ignored by OpenAI clients)."""
    return {
        "conversation_id": str(turn.frame.conversation_id),
        "message_id": str(end.message_id),
        "provider": end.provider,
        "cost_usd": format_usd(end.cost_usd),
    }


async def _whole(
    turn: AcceptedTurn, chunks: AsyncIterator[ReplyChunk], model: str
) -> dict[str, Any]:
    parts: list[str] = []
    async for chunk in chunks:
        if isinstance(chunk, DeltaChunk):
            parts.append(chunk.text)
        elif isinstance(chunk, ErrorChunk):
            raise _refusal(chunk.code, chunk.message)
        elif isinstance(chunk, EndChunk):
            return _envelope(turn, chunk.model, "chat.completion") | {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(parts)},
                        "finish_reason": _FINISH.get(chunk.finish_reason, chunk.finish_reason),
                    }
                ],
                "usage": _usage(chunk),
                "chatbus": _chatbus(turn, chunk),
            }
    raise _refusal(ErrorCode.INTERNAL_ERROR, "the turn ended without an answer")


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _sse(
    state: GatewayState,
    turn: AcceptedTurn,
    chunks: AsyncIterator[ReplyChunk],
    model: str,
    include_usage: bool,
) -> AsyncIterator[str]:
    """`chat.completion.chunk` events, then the usage chunk if asked for, then `[DONE]`."""
    envelope = _envelope(turn, model, "chat.completion.chunk")
    first = {"role": "assistant", "content": ""}
    try:
        yield _event(envelope | {"choices": [{"index": 0, "delta": first, "finish_reason": None}]})
        async for chunk in chunks:
            if isinstance(chunk, DeltaChunk):
                delta = {"content": chunk.text}
                choice = {"index": 0, "delta": delta, "finish_reason": None}
                yield _event(envelope | {"choices": [choice]})
            elif isinstance(chunk, EndChunk):
                envelope["model"] = chunk.model
                finish = _FINISH.get(chunk.finish_reason, chunk.finish_reason)
                choice = {"index": 0, "delta": {}, "finish_reason": finish}
                yield _event(envelope | {"choices": [choice], "chatbus": _chatbus(turn, chunk)})
                if include_usage:
                    yield _event(envelope | {"choices": [], "usage": _usage(chunk)})
            elif isinstance(chunk, ErrorChunk):
                error = {"message": chunk.message, "type": "api_error", "code": chunk.code}
                yield _event({"error": error})
        yield "data: [DONE]\n\n"
    finally:
        state.router.close(turn.frame.request_id, turn.queue)
