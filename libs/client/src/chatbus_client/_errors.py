"""The one exception of the client, and the codes it adds to the server's.

ChatbusError(code, message, status, retryable, retry_after, fields)
├── from a REST answer: the `code` and `message` of its JSON body, `status` its HTTP status
├── from a `chat.error` frame: its `code`, `message` and `retryable` (`status` is None)
└── from the client itself (`status` is None):
    connection_failed  the gateway could not be reached, or the socket opened badly
    connection_lost    the socket dropped and every reconnect attempt failed (retryable)
    unauthenticated    the gateway closed the socket with 4401: a bad or expired token
    closed             the client was closed while the turn was still running

Server codes are listed in docs/protocol.md and docs/api.md
(`chatbus_contracts.errors.ErrorCode`).
"""

from __future__ import annotations

CONNECTION_FAILED = "connection_failed"
CONNECTION_LOST = "connection_lost"
UNAUTHENTICATED = "unauthenticated"
CLOSED = "closed"


class ChatbusError(Exception):
    """An error answer from chatbus, or a connection the client could not keep up.

    Branch on `code` (stable, snake_case), never on `message`.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        fields: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        """Seconds to wait before trying again (`rate_limited`), when the server said."""
        self.fields = fields or []
        """For `invalid_request` (422): `{"field", "message"}` for each bad input."""

    def __repr__(self) -> str:
        return f"ChatbusError(code={self.code!r}, message={self.message!r}, status={self.status})"
