"""What a provider wire format must supply, plus shared encoding helpers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from chatbus_emulator.choreography import StreamFrames
from chatbus_emulator.plan import ResponsePlan
from chatbus_emulator.prompt import Prompt

JSON_HEADERS: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
SSE_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
)


@dataclass(frozen=True, slots=True)
class ResponseIds:
    """Identifiers stamped on one answer."""

    response_id: str
    """``chatcmpl-...`` or ``msg_...``."""
    request_id: str
    """Value of the provider's request-id response header."""
    created: int
    """Unix seconds."""


class WireFormat(Protocol):
    """One provider's request parsing and response encoding."""

    request_id_header: str

    def ids(self, seq: int, created: int) -> ResponseIds:
        """Identifiers for the ``seq``-th request."""
        ...

    def invalid_request(self, body: Any) -> str | None:
        """Why ``body`` would be rejected with a 400, or ``None`` if it is acceptable."""
        ...

    def prompt(self, body: Mapping[str, Any]) -> Prompt:
        """The prompt text of a valid body."""
        ...

    def max_tokens(self, body: Mapping[str, Any]) -> int | None:
        """The request's output-token limit, if any."""
        ...

    def error_body(self, status: int, ids: ResponseIds, message: str | None = None) -> Any:
        """The provider's JSON error body for ``status``."""
        ...

    def completion_body(self, plan: ResponsePlan, body: Mapping[str, Any], ids: ResponseIds) -> Any:
        """The non-streamed JSON answer."""
        ...

    def stream_frames(
        self, plan: ResponsePlan, body: Mapping[str, Any], ids: ResponseIds
    ) -> StreamFrames:
        """The streamed answer as encoded SSE events."""
        ...


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as the providers send it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def optional_positive_int(body: Mapping[str, Any], key: str) -> str | None:
    """Complaint about ``body[key]`` if present and not a positive integer, else ``None``."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"{key}: must be a positive integer"
    return None
