"""Anthropic Messages wire format: request checks, bodies, stream events and errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatbus_emulator.choreography import StreamFrames
from chatbus_emulator.plan import ResponsePlan
from chatbus_emulator.prompt import Prompt, anthropic_prompt
from chatbus_emulator.wire import ResponseIds, dumps, optional_positive_int

# status -> (error.type, error.message), mirroring what the API returns.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not found."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def _event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


def _cache_usage(plan: ResponsePlan) -> dict[str, Any]:
    return {
        "input_tokens": plan.input_tokens,
        "cache_creation_input_tokens": plan.cache_creation_tokens,
        "cache_read_input_tokens": plan.cached_tokens,
    }


def usage(plan: ResponsePlan, output_tokens: int) -> dict[str, Any]:
    """Usage object; ``input_tokens`` excludes cache reads and writes, as Anthropic counts."""
    return {
        **_cache_usage(plan),
        "cache_creation": {
            "ephemeral_5m_input_tokens": plan.cache_creation_tokens,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def models_list(models: tuple[str, ...], created_at: str) -> dict[str, Any]:
    """``GET /v1/models`` body in Anthropic's paginated format."""
    return {
        "data": [
            {"type": "model", "id": model, "display_name": model, "created_at": created_at}
            for model in models
        ],
        "has_more": False,
        "first_id": models[0] if models else None,
        "last_id": models[-1] if models else None,
    }


class AnthropicWire:
    """Anthropic ``/v1/messages``."""

    request_id_header = "request-id"

    def ids(self, seq: int, created: int) -> ResponseIds:
        """``msg_...`` ids derived from the request's sequence number."""
        return ResponseIds(
            response_id=f"msg_emulator{seq:012d}",
            request_id=f"req_emulator{seq:012d}",
            created=created,
        )

    def invalid_request(self, body: Any) -> str | None:
        """Reject what the real API would reject for a plain text Messages request."""
        if not isinstance(body, Mapping):
            return "There was an error parsing the body of your request."
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: Field required"
        if body.get("max_tokens") is None:
            return "max_tokens: Field required"
        if "stream" in body and not isinstance(body["stream"], bool | None):
            return "stream: Input should be a valid boolean"
        system = body.get("system")
        if system is not None and not isinstance(system, str | list):
            return "system: Input should be a valid string or list of text blocks"
        return optional_positive_int(body, "max_tokens")

    def prompt(self, body: Mapping[str, Any]) -> Prompt:
        """Messages plus the top-level ``system`` (string or text blocks)."""
        return anthropic_prompt(body)

    def max_tokens(self, body: Mapping[str, Any]) -> int | None:
        """The required ``max_tokens``."""
        limit = body.get("max_tokens")
        return limit if isinstance(limit, int) else None

    def error_body(self, status: int, ids: ResponseIds, message: str | None = None) -> Any:
        """``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
        fallback = "invalid_request_error" if status < 500 else "api_error"
        kind, default_message = _ERRORS.get(status, (fallback, f"Error {status}"))
        return {
            "type": "error",
            "error": {"type": kind, "message": message or default_message},
            "request_id": ids.request_id,
        }

    def _message(
        self, plan: ResponsePlan, body: Mapping[str, Any], ids: ResponseIds, *, final: bool
    ) -> dict[str, Any]:
        return {
            "id": ids.response_id,
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": plan.text}] if final else [],
            "stop_reason": self._stop_reason(plan) if final else None,
            "stop_sequence": None,
            # Streams announce a provisional output count of 1, as the API does.
            "usage": usage(plan, plan.completion_tokens if final else 1),
        }

    @staticmethod
    def _stop_reason(plan: ResponsePlan) -> str:
        return "max_tokens" if plan.truncated else "end_turn"

    def completion_body(self, plan: ResponsePlan, body: Mapping[str, Any], ids: ResponseIds) -> Any:
        """A ``message`` object."""
        return self._message(plan, body, ids, final=True)

    def stream_frames(
        self, plan: ResponsePlan, body: Mapping[str, Any], ids: ResponseIds
    ) -> StreamFrames:
        """``message_start`` ... ``message_stop``, with one text block."""
        start = {"type": "message_start", "message": self._message(plan, body, ids, final=False)}
        block_start = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason(plan), "stop_sequence": None},
            # Current API versions repeat the (cumulative) input counts here.
            "usage": {**_cache_usage(plan), "output_tokens": plan.completion_tokens},
        }
        truncated_json = (
            b"event: content_block_delta\n"
            b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
            b"\n\n"
        )
        return StreamFrames(
            prologue=[
                _event("message_start", start),
                _event("content_block_start", block_start),
                _event("ping", {"type": "ping"}),
            ],
            tokens=[
                _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": token},
                    },
                )
                for token in plan.tokens
            ],
            epilogue=[
                _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
                _event("message_delta", message_delta),
                _event("message_stop", {"type": "message_stop"}),
            ],
            malformed=truncated_json,
        )
