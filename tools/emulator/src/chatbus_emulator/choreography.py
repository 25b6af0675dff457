"""Turn a plan plus wire-format bytes into delivery steps: pacing and fault injection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chatbus_emulator.delivery import Cut, Pause, Stall, Start, Step, Write
from chatbus_emulator.plan import ResponsePlan, StreamFault

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class StreamFrames:
    """The SSE events of one streamed answer, already encoded for the wire."""

    prologue: Sequence[bytes]
    """Events before the first content token (role chunk, ``message_start`` ...)."""
    tokens: Sequence[bytes]
    """One event per content token."""
    epilogue: Sequence[bytes]
    """Events after the last content token (finish, usage, ``[DONE]`` ...)."""
    malformed: bytes
    """An event whose data line is not valid JSON, for the ``malformed`` fault."""


def _fault_steps(fault: StreamFault, malformed: bytes) -> list[Step]:
    if fault.kind == "stall":
        return [Stall()]
    if fault.kind == "cut":
        return [Cut()]
    return [Write(malformed)]


def stream_steps(frames: StreamFrames, plan: ResponsePlan, headers: Headers) -> list[Step]:
    """Steps for an SSE answer.

    Headers and the prologue go out at once, like a real provider's; the first-token delay
    comes before the first content token. A fault fires after ``after_tokens`` tokens (or
    after the last token if the reply is shorter), always before the epilogue.
    """
    steps: list[Step] = [Start(200, headers), *(Write(f) for f in frames.prologue)]
    fault = plan.fault
    fault_at = min(fault.after_tokens, len(frames.tokens)) if fault else -1
    for index, frame in enumerate(frames.tokens):
        if index == fault_at and fault is not None:
            steps.extend(_fault_steps(fault, frames.malformed))
        delay = plan.first_token_delay if index == 0 else plan.inter_token_delay
        if delay > 0:
            steps.append(Pause(delay))
        steps.append(Write(frame, token=True))
    if fault_at == len(frames.tokens) and fault is not None:
        steps.extend(_fault_steps(fault, frames.malformed))
    steps.extend(Write(f) for f in frames.epilogue)
    return _until_terminal(steps)


def body_steps(body: bytes, plan: ResponsePlan, headers: Headers) -> list[Step]:
    """Steps for a non-streamed JSON answer, paced like the equivalent stream.

    Faults map onto a plain body: ``stall`` never answers, ``cut`` sends half the body and
    drops the connection, ``malformed`` sends a truncated (invalid JSON) body.
    """
    steps: list[Step] = []
    if plan.total_delay > 0:
        steps.append(Pause(plan.total_delay))
    kind = plan.fault.kind if plan.fault else None
    if kind == "stall":
        return [*steps, Stall()]
    if kind == "malformed":
        body = body[: len(body) // 2]
    # For a cut, content-length still announces the full body, so the client sees a
    # short read rather than a complete (if odd) response.
    steps.append(Start(200, (*headers, ("content-length", str(len(body))))))
    if kind == "cut":
        return [*steps, Write(body[: len(body) // 2]), Cut()]
    return [*steps, Write(body)]


def error_steps(status: int, body: bytes, headers: Headers) -> list[Step]:
    """Steps for an immediate HTTP error answer."""
    return [Start(status, (*headers, ("content-length", str(len(body))))), Write(body)]


def _until_terminal(steps: list[Step]) -> list[Step]:
    # Nothing after a stall or a cut can ever be sent, so leave it out of the plan.
    for index, step in enumerate(steps):
        if isinstance(step, Stall | Cut):
            return steps[: index + 1]
    return steps
