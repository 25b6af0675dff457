"""OpenAI chat-completions wire format: request checks, bodies, chunks and errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatbus_emulator.choreography import StreamFrames
from chatbus_emulator.plan import ResponsePlan
from chatbus_emulator.prompt import Prompt, openai_prompt
from chatbus_emulator.wire import ResponseIds, dumps, optional_positive_int

_FINGERPRINT = "fp_emulator"

# status -> (error.type, error.code, error.message), mirroring what the API returns.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests per min (RPM). Please try again later.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    529: ("server_error", None, "The server is overloaded, please try again later."),
}


def _sse(payload: Any) -> bytes:
    return b"data: " + dumps(payload) + b"\n\n"


def usage(plan: ResponsePlan) -> dict[str, Any]:
    """Usage object; ``prompt_tokens`` includes the cached tokens, as OpenAI counts them."""
    prompt_tokens = plan.input_tokens + plan.cached_tokens + plan.cache_creation_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": prompt_tokens + plan.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": plan.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def models_list(models: tuple[str, ...], created: int) -> dict[str, Any]:
    """``GET /v1/models`` body."""
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": created, "owned_by": "chatbus-emulator"}
            for model in models
        ],
    }


class OpenAIWire:
    """OpenAI ``/v1/chat/completions``."""

    request_id_header = "x-request-id"

    def ids(self, seq: int, created: int) -> ResponseIds:
        """``chatcmpl-...`` ids derived from the request's sequence number."""
        return ResponseIds(
            response_id=f"chatcmpl-emulator{seq:012d}",
            request_id=f"req_emulator{seq:012d}",
            created=created,
        )

    def invalid_request(self, body: Any) -> str | None:
        """Reject what the real API would reject for a plain text chat request."""
        if not isinstance(body, Mapping):
            return "We could not parse the JSON body of your request."
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "Missing required parameter: 'model'."
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "Missing required parameter: 'messages'."
        if "stream" in body and not isinstance(body["stream"], bool | None):
            return "stream: must be a boolean"
        return optional_positive_int(body, "max_tokens") or optional_positive_int(
            body, "max_completion_tokens"
        )

    def prompt(self, body: Mapping[str, Any]) -> Prompt:
        """System prompts are ordinary messages in this format."""
        return openai_prompt(body)

    def max_tokens(self, body: Mapping[str, Any]) -> int | None:
        """``max_completion_tokens`` wins over the legacy ``max_tokens``."""
        limit = body.get("max_completion_tokens")
        if limit is None:
            limit = body.get("max_tokens")
        return limit if isinstance(limit, int) else None

    def error_body(self, status: int, ids: ResponseIds, message: str | None = None) -> Any:
        """``{"error": {"message", "type", "param", "code"}}``."""
        fallback = "invalid_request_error" if status < 500 else "server_error"
        kind, code, default_message = _ERRORS.get(status, (fallback, None, f"Error {status}."))
        return {
            "error": {
                "message": message or default_message,
                "type": kind,
                "param": None,
                "code": code,
            }
        }

    def completion_body(self, plan: ResponsePlan, body: Mapping[str, Any], ids: ResponseIds) -> Any:
        """A ``chat.completion`` object."""
        return {
            "id": ids.response_id,
            "object": "chat.completion",
            "created": ids.created,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": plan.text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "length" if plan.truncated else "stop",
                }
            ],
            "usage": usage(plan),
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }

    def stream_frames(
        self, plan: ResponsePlan, body: Mapping[str, Any], ids: ResponseIds
    ) -> StreamFrames:
        """``chat.completion.chunk`` events, optional usage chunk, then ``[DONE]``."""
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True

        def chunk(choices: list[Any], **extra: Any) -> bytes:
            payload: dict[str, Any] = {
                "id": ids.response_id,
                "object": "chat.completion.chunk",
                "created": ids.created,
                "model": body["model"],
                "service_tier": "default",
                "system_fingerprint": _FINGERPRINT,
                "choices": choices,
            }
            # With include_usage the API adds `"usage": null` to every chunk but the last.
            if include_usage:
                payload["usage"] = None
            payload.update(extra)
            return _sse(payload)

        def choice(delta: dict[str, Any], finish_reason: str | None = None) -> list[Any]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

        epilogue = [chunk(choice({}, "length" if plan.truncated else "stop"))]
        if include_usage:
            epilogue.append(chunk([], usage=usage(plan)))
        epilogue.append(b"data: [DONE]\n\n")
        truncated_json = (
            b'data: {"id":"' + ids.response_id.encode() + b'","object":"chat.completion.chunk",'
            b'"choices":[{"index":0,"delta":{"content":\n\n'
        )
        return StreamFrames(
            prologue=[chunk(choice({"role": "assistant", "content": "", "refusal": None}))],
            tokens=[chunk(choice({"content": token})) for token in plan.tokens],
            epilogue=epilogue,
            malformed=truncated_json,
        )
