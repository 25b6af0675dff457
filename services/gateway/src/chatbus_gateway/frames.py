"""Parsing client frames and turning reply chunks into server frames."""

from __future__ import annotations

import json
from typing import Any

from chatbus_contracts.chunks import DeltaChunk, EndChunk, ReplyChunk, RestartChunk, StoppedChunk
from chatbus_contracts.common import format_usd
from chatbus_contracts.errors import ErrorCode
from chatbus_contracts.ws import (
    CLIENT_FRAME_ADAPTER,
    CLIENT_FRAME_TYPES,
    ChatDelta,
    ChatEnd,
    ChatError,
    ChatRestart,
    ChatStopped,
    ClientFrame,
)
from pydantic import ValidationError


class BadFrame(Exception):
    """A client frame that cannot be processed; carries the `chat.error` to send back."""

    def __init__(self, error: ChatError) -> None:
        super().__init__(error.message)
        self.error = error


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors()[:5]:
        where = ".".join(str(part) for part in item["loc"][1:]) or "frame"
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


def parse_client_frame(text: str) -> ClientFrame:
    """The frame in `text`, or `BadFrame` with a stable code saying what is wrong."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadFrame(ChatError(code=ErrorCode.INVALID_JSON, message=str(error))) from error
    if not isinstance(data, dict):
        raise BadFrame(ChatError(code=ErrorCode.INVALID_FRAME, message="a frame is a JSON object"))
    frame_id = data.get("id") if isinstance(data.get("id"), str) else None
    frame_type = data.get("type")
    if frame_type not in CLIENT_FRAME_TYPES:
        raise BadFrame(
            ChatError(
                id=frame_id,
                code=ErrorCode.UNKNOWN_TYPE,
                message=f"unknown frame type {frame_type!r}",
            )
        )
    try:
        return CLIENT_FRAME_ADAPTER.validate_python(data)
    except ValidationError as error:
        raise BadFrame(
            ChatError(id=frame_id, code=ErrorCode.INVALID_FRAME, message=_describe(error))
        ) from error


def chunk_frame(
    chunk: ReplyChunk,
) -> ChatDelta | ChatRestart | ChatEnd | ChatError | ChatStopped:
    """The server frame that relays one reply chunk."""
    if isinstance(chunk, DeltaChunk):
        return ChatDelta(request_id=chunk.request_id, seq=chunk.seq, text=chunk.text)
    if isinstance(chunk, RestartChunk):
        return ChatRestart(request_id=chunk.request_id, seq=chunk.seq, attempt=chunk.attempt)
    if isinstance(chunk, EndChunk):
        return ChatEnd(
            request_id=chunk.request_id,
            message_id=chunk.message_id,
            finish_reason=chunk.finish_reason,
            usage=chunk.usage,
            cost_usd=format_usd(chunk.cost_usd),
            model=chunk.model,
            provider=chunk.provider,
            latency_ms=chunk.latency_ms,
        )
    if isinstance(chunk, StoppedChunk):
        return ChatStopped(request_id=chunk.request_id, message_id=chunk.message_id)
    return ChatError(
        request_id=chunk.request_id,
        code=chunk.code,
        message=chunk.message,
        retryable=chunk.retryable,
    )
