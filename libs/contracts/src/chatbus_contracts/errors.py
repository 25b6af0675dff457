"""Stable, snake_case error codes used in `chat.error` frames, chunks and HTTP bodies.

ErrorCode
├── client errors (retryable=False, fix the request)
│   invalid_json, unknown_type, invalid_frame, content_too_large,
│   conversation_not_found, message_not_found, not_found
├── auth (the socket is closed with 4401; REST: 401 / 403)
│   unauthenticated, forbidden
└── server / provider errors (some retryable)
    internal_error, unavailable, provider_error,
    dead_lettered (the request failed on every delivery and was set aside for an operator)
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """A machine-readable reason; clients branch on it, never on the message text."""

    INVALID_JSON = "invalid_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FRAME = "invalid_frame"
    CONTENT_TOO_LARGE = "content_too_large"
    CONVERSATION_NOT_FOUND = "conversation_not_found"
    MESSAGE_NOT_FOUND = "message_not_found"
    NOT_FOUND = "not_found"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    INTERNAL_ERROR = "internal_error"
    UNAVAILABLE = "unavailable"
    PROVIDER_ERROR = "provider_error"
    RATE_LIMITED = "rate_limited"
    BUDGET_EXCEEDED = "budget_exceeded"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PROVIDER_TIMEOUT = "provider_timeout"
    AUTH_FAILED = "auth_failed"
    INVALID_REQUEST = "invalid_request"
    CONTEXT_TOO_LONG = "context_too_long"
    DEAD_LETTERED = "dead_lettered"


# WebSocket close codes.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013
