"""What the emulator remembers about each completion request it received."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["pending", "completed", "disconnected", "cut", "aborted"]
"""How a response ended.

``completed``: fully sent. ``disconnected``: the client went away first. ``cut``: the
emulator dropped the connection on purpose. ``aborted``: the emulator shut down mid-response.
"""

# Credentials never end up in records, which tests print and serve over HTTP.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key"})


def public_headers(raw: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased request headers without credentials; repeated headers are comma-joined."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.lower()
        if key in _SECRET_HEADERS:
            continue
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


@dataclass(slots=True)
class RequestRecord:
    """One received completion request and how the emulator answered it.

    Mutated in place while its response is being delivered, so a record fetched during a
    stream shows live progress.
    """

    id: int
    path: str
    headers: dict[str, str]
    body: Any
    """The parsed JSON body, or ``None`` if it was not valid JSON."""
    received_at: float
    """``time.time()`` when the request arrived."""
    stream: bool
    scripted: bool = False
    """Whether a queued ``ScriptedResponse`` was consumed by this request."""
    status: int | None = None
    """HTTP status sent, or ``None`` while (or if) no response has started."""
    chunks_sent: int = 0
    """Body writes sent: SSE events for streams (including a malformed one), else 1."""
    tokens_sent: int = 0
    """Content tokens sent."""
    outcome: Outcome = "pending"
    finished_at: float | None = None
    disconnected_at: float | None = None
    """``time.time()`` when the client closed the connection before the response ended."""

    @property
    def disconnected(self) -> bool:
        """Whether the client went away before the response was complete."""
        return self.disconnected_at is not None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, as served by ``GET /_emulator/requests``."""
        return {
            "id": self.id,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
            "received_at": self.received_at,
            "stream": self.stream,
            "scripted": self.scripted,
            "status": self.status,
            "chunks_sent": self.chunks_sent,
            "tokens_sent": self.tokens_sent,
            "outcome": self.outcome,
            "finished_at": self.finished_at,
            "disconnected": self.disconnected,
            "disconnected_at": self.disconnected_at,
        }
