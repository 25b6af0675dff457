"""Scripted responses: what the emulator should do for one upcoming completion request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

_INT_FIELDS = (
    "reply_tokens",
    "cached_tokens",
    "cache_creation_tokens",
    "status",
    "stall_after_tokens",
    "cut_after_tokens",
    "malformed_after_tokens",
)
_NUMBER_FIELDS = ("first_token_delay_ms", "inter_token_delay_ms", "retry_after")
_STREAM_FAULTS = ("stall_after_tokens", "cut_after_tokens", "malformed_after_tokens")


@dataclass(frozen=True, slots=True)
class ScriptedToolCall:
    """One function call to answer with (OpenAI format)."""

    name: str
    arguments: str = "{}"
    """JSON text, sent as is; ``from_dict`` also takes an object and sends its JSON."""
    id: str | None = None
    """The call's id; by default ``call_emulator<request>_<index>``."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a tool call needs a name")

    @classmethod
    def from_dict(cls, data: Any) -> ScriptedToolCall:
        """Build from ``{"name", "arguments", "id"}``; ``arguments`` may be an object."""
        if not isinstance(data, Mapping):
            raise ValueError("each tool call must be an object")
        unknown = sorted(set(data) - {"name", "arguments", "id"})
        if unknown:
            raise ValueError(f"unknown tool call field(s): {', '.join(unknown)}")
        name, arguments, call_id = data.get("name"), data.get("arguments", "{}"), data.get("id")
        if isinstance(arguments, Mapping):
            # Default separators put spaces in, so a stream sends the arguments in pieces.
            arguments = json.dumps(arguments)
        if not isinstance(name, str) or not isinstance(arguments, str):
            raise ValueError("a tool call needs a name and arguments (an object or JSON text)")
        if call_id is not None and not isinstance(call_id, str):
            raise ValueError("a tool call id must be a string")
        return cls(name=name, arguments=arguments, id=call_id)


@dataclass(frozen=True, kw_only=True, slots=True)
class ScriptedResponse:
    """One queued behaviour, consumed by exactly one completion request.

    Unset fields fall back to the emulator's defaults. At most one fault may be set:
    an HTTP error ``status`` or one of the ``*_after_tokens`` stream faults.
    """

    reply: str | None = None
    """Exact reply text; mutually exclusive with ``reply_tokens``."""
    reply_tokens: int | None = None
    """Generate this many tokens of deterministic filler instead of a reply text."""
    first_token_delay_ms: float | None = None
    inter_token_delay_ms: float | None = None
    cached_tokens: int = 0
    """Reported as prompt-cache reads (OpenAI ``cached_tokens``, Anthropic ``cache_read``)."""
    cache_creation_tokens: int = 0
    """Reported as prompt-cache writes (Anthropic ``cache_creation_input_tokens``)."""
    status: int | None = None
    """Answer with this HTTP error status and the provider's error body (400-599)."""
    retry_after: float | None = None
    """Seconds, sent as the ``retry-after`` header; only meaningful with ``status``."""
    stall_after_tokens: int | None = None
    """Send this many content tokens, then go silent while keeping the connection open."""
    cut_after_tokens: int | None = None
    """Send this many content tokens, then drop the connection mid-body."""
    malformed_after_tokens: int | None = None
    """Send this many content tokens, then one data line that is not valid JSON."""
    tool_calls: tuple[ScriptedToolCall, ...] | None = None
    """Answer with these function calls, finish reason ``tool_calls`` (OpenAI format only).

    Without ``reply`` or ``reply_tokens`` the answer has no text. Each call's argument
    pieces count as completion tokens and stream like content tokens.
    """

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name in _NUMBER_FIELDS:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.reply is not None and self.reply_tokens is not None:
            raise ValueError("set either reply or reply_tokens, not both")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {self.status}")
        faults = [name for name in _STREAM_FAULTS if getattr(self, name) is not None]
        if self.status is not None:
            faults.append("status")
        if len(faults) > 1:
            raise ValueError(f"at most one fault per scripted response, got {', '.join(faults)}")
        if self.retry_after is not None and self.status is None:
            raise ValueError("retry_after requires status")
        if self.tool_calls is not None:
            if not self.tool_calls:
                raise ValueError("tool_calls must not be empty")
            if not all(isinstance(call, ScriptedToolCall) for call in self.tool_calls):
                raise ValueError("tool_calls must be ScriptedToolCall items")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScriptedResponse:
        """Build from JSON-like data, rejecting unknown keys and wrongly typed values."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown scripted response field(s): {', '.join(unknown)}")
        for name, value in data.items():
            if value is None:
                continue
            # bool is an int subclass; a JSON `true` here is always a caller mistake.
            if name in _INT_FIELDS and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be an integer")
            if name in _NUMBER_FIELDS and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise ValueError(f"{name} must be a number")
            if name == "reply" and not isinstance(value, str):
                raise ValueError("reply must be a string")
        values = dict(data)
        if values.get("tool_calls") is not None:
            calls = values["tool_calls"]
            if not isinstance(calls, list | tuple):
                raise ValueError("tool_calls must be a list")
            values["tool_calls"] = tuple(ScriptedToolCall.from_dict(call) for call in calls)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form containing only the fields that were set."""
        return {k: v for k, v in asdict(self).items() if v != _DEFAULTS[k]}


_DEFAULTS: dict[str, Any] = asdict(ScriptedResponse())


def coerce_script(item: ScriptedResponse | Mapping[str, Any]) -> ScriptedResponse:
    """Accept either a ready ``ScriptedResponse`` or its JSON-like dict form."""
    if isinstance(item, ScriptedResponse):
        return item
    return ScriptedResponse.from_dict(item)
