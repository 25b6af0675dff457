"""Decide what a successful (non-HTTP-error) answer contains, independent of wire format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chatbus_emulator.prompt import Prompt
from chatbus_emulator.script import ScriptedResponse
from chatbus_emulator.state import EmulatorState
from chatbus_emulator.tokens import filler_tokens, tokenize

FaultKind = Literal["stall", "cut", "malformed"]


@dataclass(frozen=True, slots=True)
class StreamFault:
    """A mid-body fault that fires once ``after_tokens`` content tokens have been sent."""

    kind: FaultKind
    after_tokens: int


@dataclass(frozen=True, slots=True)
class PlannedToolCall:
    """A function call of the answer; a stream sends its arguments in ``argument_tokens``."""

    id: str | None
    """The scripted id, or ``None`` for the wire format's default."""
    name: str
    argument_tokens: tuple[str, ...]

    @property
    def arguments(self) -> str:
        """The whole arguments JSON text."""
        return "".join(self.argument_tokens)


@dataclass(frozen=True, slots=True)
class ResponsePlan:
    """Content, usage, timing and fault of one answer."""

    tokens: tuple[str, ...]
    truncated: bool
    """Whether the reply was cut short by the request's max-tokens limit."""
    input_tokens: int
    """Estimated uncached prompt tokens (see ``Prompt.estimated_tokens``)."""
    cached_tokens: int
    cache_creation_tokens: int
    first_token_delay: float
    """Seconds before the first content token."""
    inter_token_delay: float
    """Seconds between later content tokens."""
    fault: StreamFault | None
    tool_calls: tuple[PlannedToolCall, ...] = ()
    """Function calls sent after the text; the finish reason is then ``tool_calls``."""

    @property
    def text(self) -> str:
        """The reply text actually produced (after any truncation)."""
        return "".join(self.tokens)

    @property
    def completion_tokens(self) -> int:
        """Number of content tokens in the reply, tool-call argument pieces included."""
        return len(self.tokens) + sum(len(call.argument_tokens) for call in self.tool_calls)

    @property
    def total_delay(self) -> float:
        """Time a full stream of this reply would take, used to pace non-streamed answers."""
        if not self.completion_tokens:
            return self.first_token_delay
        return self.first_token_delay + self.inter_token_delay * (self.completion_tokens - 1)


def default_reply(prompt: Prompt) -> str:
    """The reply used when neither a script nor the state sets one."""
    return f"Emulated reply to: {prompt.last_user_text}"


def _reply_tokens(
    script: ScriptedResponse | None, state: EmulatorState, prompt: Prompt
) -> list[str]:
    if script is not None and script.reply_tokens is not None:
        return filler_tokens(script.reply_tokens)
    if script is not None and script.reply is not None:
        return tokenize(script.reply)
    if script is not None and script.tool_calls:
        return []  # tool calls alone: no text
    if state.reply is not None:
        return tokenize(state.reply)
    return tokenize(default_reply(prompt))


def _tool_calls(script: ScriptedResponse | None) -> tuple[PlannedToolCall, ...]:
    if script is None or not script.tool_calls:
        return ()
    return tuple(
        PlannedToolCall(call.id, call.name, tuple(tokenize(call.arguments) or [""]))
        for call in script.tool_calls
    )


def _fault(script: ScriptedResponse | None) -> StreamFault | None:
    if script is None:
        return None
    if script.stall_after_tokens is not None:
        return StreamFault("stall", script.stall_after_tokens)
    if script.cut_after_tokens is not None:
        return StreamFault("cut", script.cut_after_tokens)
    if script.malformed_after_tokens is not None:
        return StreamFault("malformed", script.malformed_after_tokens)
    return None


def _ms(script_value: float | None, default: float) -> float:
    return (default if script_value is None else script_value) / 1000.0


def build_plan(
    *,
    script: ScriptedResponse | None,
    state: EmulatorState,
    prompt: Prompt,
    max_tokens: int | None,
) -> ResponsePlan:
    """Combine the scripted response (if any), the state's defaults and the request."""
    tokens = _reply_tokens(script, state, prompt)
    truncated = max_tokens is not None and len(tokens) > max_tokens
    if truncated:
        tokens = tokens[:max_tokens]
    return ResponsePlan(
        tokens=tuple(tokens),
        truncated=truncated,
        input_tokens=prompt.estimated_tokens,
        cached_tokens=script.cached_tokens if script else 0,
        cache_creation_tokens=script.cache_creation_tokens if script else 0,
        first_token_delay=_ms(
            script.first_token_delay_ms if script else None, state.first_token_delay_ms
        ),
        inter_token_delay=_ms(
            script.inter_token_delay_ms if script else None, state.inter_token_delay_ms
        ),
        fault=_fault(script),
        tool_calls=_tool_calls(script),
    )
