"""Scripted responses: what the emulator should do for one upcoming completion request."""

from __future__ import annotations

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
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form containing only the fields that were set."""
        return {k: v for k, v in asdict(self).items() if v != _DEFAULTS[k]}


_DEFAULTS: dict[str, Any] = asdict(ScriptedResponse())


def coerce_script(item: ScriptedResponse | Mapping[str, Any]) -> ScriptedResponse:
    """Accept either a ready ``ScriptedResponse`` or its JSON-like dict form."""
    if isinstance(item, ScriptedResponse):
        return item
    return ScriptedResponse.from_dict(item)
