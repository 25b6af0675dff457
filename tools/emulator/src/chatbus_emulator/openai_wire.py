"""OpenAI chat-completions wire format: request checks, bodies, chunks and errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatbus_emulator.choreography import StreamFrames
from chatbus_emulator.plan import PlannedToolCall, ResponsePlan
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


def _tools_problem(body: Mapping[str, Any]) -> str | None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        return "Invalid type for 'tools': expected an array."
    for index, tool in enumerate(tools or []):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            return f"Invalid value for 'tools[{index}]': expected a function tool with a name."
    if body.get("tool_choice") is not None and not tools:
        return (
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
            "are specified."
        )
    return None


def _unanswered(call_ids: list[str]) -> str:
    return (
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(call_ids)
    )


def _tool_messages_problem(messages: list[Any]) -> str | None:
    """Each tool result answers a call of the assistant message just before; each call gets one."""
    waiting: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        if message.get("role") == "tool":
            if message.get("tool_call_id") not in waiting:
                # (sic: the API's own spelling)
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'."
                )
            waiting.remove(message["tool_call_id"])
            continue
        if waiting:
            return _unanswered(waiting)
        if message.get("role") == "assistant":
            calls = message.get("tool_calls") or []
            waiting = [str(call.get("id")) for call in calls if isinstance(call, Mapping)]
    return _unanswered(waiting) if waiting else None


def _call_id(call: PlannedToolCall, index: int, ids: ResponseIds) -> str:
    return call.id or f"call_{ids.response_id.removeprefix('chatcmpl-')}_{index}"


def _finish_reason(plan: ResponsePlan) -> str:
    if plan.tool_calls:
        return "tool_calls"
    return "length" if plan.truncated else "stop"


def _message(plan: ResponsePlan, ids: ResponseIds) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": plan.text or (None if plan.tool_calls else ""),
        "refusal": None,
        "annotations": [],
    }
    if plan.tool_calls:
        message["tool_calls"] = [
            {
                "id": _call_id(call, index, ids),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for index, call in enumerate(plan.tool_calls)
        ]
    return message


def _tool_call_deltas(plan: ResponsePlan, ids: ResponseIds) -> list[dict[str, Any]]:
    """One ``delta.tool_calls`` item per argument piece; the first of a call names it."""
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(plan.tool_calls):
        for piece_index, piece in enumerate(call.argument_tokens):
            if piece_index == 0:
                deltas.append(
                    {
                        "index": index,
                        "id": _call_id(call, index, ids),
                        "type": "function",
                        "function": {"name": call.name, "arguments": piece},
                    }
                )
            else:
                deltas.append({"index": index, "function": {"arguments": piece}})
    return deltas


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
        """Reject what the real API would reject for a text chat request with tools."""
        if not isinstance(body, Mapping):
            return "We could not parse the JSON body of your request."
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "Missing required parameter: 'model'."
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "Missing required parameter: 'messages'."
        if "stream" in body and not isinstance(body["stream"], bool | None):
            return "stream: must be a boolean"
        return (
            optional_positive_int(body, "max_tokens")
            or optional_positive_int(body, "max_completion_tokens")
            or _tools_problem(body)
            or _tool_messages_problem(messages)
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
                    "message": _message(plan, ids),
                    "logprobs": None,
                    "finish_reason": _finish_reason(plan),
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

        epilogue = [chunk(choice({}, _finish_reason(plan)))]
        if include_usage:
            epilogue.append(chunk([], usage=usage(plan)))
        epilogue.append(b"data: [DONE]\n\n")
        truncated_json = (
            b'data: {"id":"' + ids.response_id.encode() + b'","object":"chat.completion.chunk",'
            b'"choices":[{"index":0,"delta":{"content":\n\n'
        )
        content = "" if plan.tokens or not plan.tool_calls else None
        tool_calls = [chunk(choice({"tool_calls": [d]})) for d in _tool_call_deltas(plan, ids)]
        return StreamFrames(
            prologue=[chunk(choice({"role": "assistant", "content": content, "refusal": None}))],
            tokens=[*(chunk(choice({"content": token})) for token in plan.tokens), *tool_calls],
            epilogue=epilogue,
            malformed=truncated_json,
        )
