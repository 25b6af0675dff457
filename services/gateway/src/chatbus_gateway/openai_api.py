"""`POST /v1/chat/completions` in the OpenAI wire format, over the same path as a socket turn.

A call becomes a `chat.send` (durable in JetStream, answered by inference, stored,
billed, published as events). Without the chatbus extension `conversation_id` it is
stateless: the request's messages are the prompt and the call is stored as a new
conversation of its own. With it, the last user message continues that conversation
and the stored history is the prompt. `Idempotency-Key` makes a retry replay the same
answer instead of starting another generation.

Function calling passes through on stateless calls: `tools`, `tool_choice`, assistant
`tool_calls` and `tool` results go to the provider as they came (the openai provider
only; the turn fails with `invalid_request` for the others), and the answer's tool calls
come back whole, as one streamed delta before `finish_reason: "tool_calls"`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from chatbus_contracts.chunks import DeltaChunk, EndChunk, ErrorChunk, ReplyChunk, RestartChunk
from chatbus_contracts.commands import PriorMessage, ToolCall, ToolUse
from chatbus_contracts.common import format_usd
from chatbus_contracts.errors import ErrorCode
from chatbus_contracts.ws import ChatSend
from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .deps import CurrentIdentity, State
from .errors import ApiError, BadRequest
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
_RESTARTED = {
    "message": "the answer restarted after an inference replica was lost; "
    "send the request again with the same Idempotency-Key",
    "type": "api_error",
    "code": ErrorCode.UNAVAILABLE,
}


class InputMessage(BaseModel):
    """One message of the request: text parts, and an assistant's tool calls or a tool result."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    @property
    def uses_tools(self) -> bool:
        """Whether the message is part of function calling."""
        return bool(self.tool_calls) or self.role == "tool"

    def text(self) -> str:
        """The message's text; `BadRequest` for a non-text part."""
        if isinstance(self.content, list):
            if any(part.get("type") != "text" for part in self.content):
                raise BadRequest("only text content parts are supported", "messages")
            return "".join(str(part.get("text", "")) for part in self.content)
        return self.content or ""

    def prior(self) -> PriorMessage:
        """The message as part of a stateless prompt; `BadRequest` for a malformed tool part."""
        if self.role == "tool" and not self.tool_call_id:
            raise BadRequest("a tool message needs its tool_call_id", "messages")
        calls = [_tool_call(call) for call in self.tool_calls] if self.tool_calls else None
        message = {
            "role": self.role,
            "content": self.text(),
            "tool_calls": calls,
            "tool_call_id": self.tool_call_id if self.role == "tool" else None,
        }
        try:
            return PriorMessage.model_validate(message)
        except ValidationError as error:
            raise BadRequest(f"messages: {error.errors()[0]['msg']}", "messages") from error


def _tool_call(raw: dict[str, Any]) -> dict[str, Any]:
    """The fields of a tool call that go upstream (a client may send more, e.g. `index`)."""
    function = raw.get("function")
    function = function if isinstance(function, dict) else {}
    return {
        "id": raw.get("id"),
        "type": raw.get("type", "function"),
        "function": {"name": function.get("name"), "arguments": function.get("arguments")},
    }


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
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    conversation_id: UUID | None = Field(
        default=None, description="chatbus extension: continue this stored conversation."
    )


def _as_send(
    body: ChatCompletionRequest, idempotency_key: str | None
) -> tuple[ChatSend, list[PriorMessage] | None, ToolUse | None]:
    """The turn of a request, its stateless prompt (None: use the stored history), its tools.

    The last user message is the turn's (stored) user message; a request that ends with
    tool results carries the messages after it in `ToolUse.after_content`.
    """
    if body.n not in (None, 1):
        raise BadRequest("n must be 1", "n")
    system = "\n\n".join(m.text() for m in body.messages if m.role in ("system", "developer"))
    talk = [m for m in body.messages if m.role not in ("system", "developer")]
    if not talk or talk[-1].role not in ("user", "tool"):
        raise BadRequest("the last message must be a user or tool message", "messages")
    users = [index for index, m in enumerate(talk) if m.role == "user"]
    if not users:
        raise BadRequest("the messages need a user message", "messages")
    question = users[-1]
    try:
        send = ChatSend(
            id=idempotency_key or f"openai-{uuid4().hex}",
            conversation_id=body.conversation_id,
            content=talk[question].text(),
            model=body.model,
            system=system or None,
            temperature=body.temperature,
            max_tokens=body.max_completion_tokens or body.max_tokens,
        )
    except ValidationError as error:
        raise BadRequest(str(error.errors()[0]["msg"]), "messages") from error
    if body.conversation_id is not None:
        if body.tools or body.tool_choice is not None or talk[-1].role == "tool":
            raise BadRequest(
                "tools and tool messages need a stateless request (no conversation_id)", "tools"
            )
        return send, None, None
    return send, [m.prior() for m in talk[:question]], _tool_use(body, talk, question)


def _tool_use(
    body: ChatCompletionRequest, talk: list[InputMessage], question: int
) -> ToolUse | None:
    """The request's tools, and the tool calls and results after the question; None if none."""
    if not body.tools and body.tool_choice is None and not any(m.uses_tools for m in talk):
        return None
    after = [m.prior() for m in talk[question + 1 :]]
    return ToolUse(tools=body.tools or None, tool_choice=body.tool_choice, after_content=after)


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
    send, prior, tool_use = _as_send(body, idempotency_key)
    if state.drain.draining:
        raise _refusal(ErrorCode.UNAVAILABLE, "the gateway is shutting down; send it again")
    try:
        turn = await state.acceptor.accept(identity, send, prior_messages=prior, tool_use=tool_use)
    except TurnRefused as refused:
        raise _refusal(
            refused.code, refused.message, retry_after_ms=refused.retry_after_ms
        ) from refused
    chunks = turn_chunks(
        state.broker, state.router, turn.frame.request_id, turn.queue, duplicate=turn.duplicate
    )
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


def _message(text: str, end: EndChunk) -> dict[str, Any]:
    """The answer: its text, and its tool calls (then `content` is null without text)."""
    if not end.tool_calls:
        return {"role": "assistant", "content": text}
    calls = [call.model_dump() for call in end.tool_calls]
    return {"role": "assistant", "content": text or None, "tool_calls": calls}


def _tool_calls_delta(calls: list[ToolCall]) -> dict[str, Any]:
    """All tool calls of the answer as one delta (clients join deltas by `index`)."""
    return {"tool_calls": [{"index": i, **call.model_dump()} for i, call in enumerate(calls)]}


async def _whole(
    turn: AcceptedTurn, chunks: AsyncIterator[ReplyChunk], model: str
) -> dict[str, Any]:
    parts: list[str] = []
    async for chunk in chunks:
        if isinstance(chunk, DeltaChunk):
            parts.append(chunk.text)
        elif isinstance(chunk, RestartChunk):
            parts.clear()  # generated again from the start by another replica
        elif isinstance(chunk, ErrorChunk):
            raise _refusal(chunk.code, chunk.message)
        elif isinstance(chunk, EndChunk):
            return _envelope(turn, chunk.model, "chat.completion") | {
                "choices": [
                    {
                        "index": 0,
                        "message": _message("".join(parts), chunk),
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
    sent_text = False
    try:
        yield _event(envelope | {"choices": [{"index": 0, "delta": first, "finish_reason": None}]})
        async for chunk in chunks:
            if isinstance(chunk, RestartChunk) and sent_text:
                # SSE cannot take text back: fail the stream; the same Idempotency-Key
                # then replays the new attempt only.
                yield _event({"error": _RESTARTED})
                break
            if isinstance(chunk, DeltaChunk):
                sent_text = True
                delta = {"content": chunk.text}
                choice = {"index": 0, "delta": delta, "finish_reason": None}
                yield _event(envelope | {"choices": [choice]})
            elif isinstance(chunk, EndChunk):
                envelope["model"] = chunk.model
                if chunk.tool_calls:
                    delta = _tool_calls_delta(chunk.tool_calls)
                    choice = {"index": 0, "delta": delta, "finish_reason": None}
                    yield _event(envelope | {"choices": [choice]})
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
