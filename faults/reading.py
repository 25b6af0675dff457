"""What a client makes of one turn's frames: the answer's text, as a UI would show it.

chat.delta    seq must be the next one (a gap or a repeat is a protocol violation)
chat.restart  of a newer attempt: drop the text so far, go on after its seq;
              of an attempt applied already (after a resume or a resend): a repeat
chat.end / chat.error (of the turn) / chat.message (the stored answer): the end
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TERMINAL = ("chat.end", "chat.error", "chat.stopped", "chat.message")
# `chat.error` codes that answer a `chat.resume` rather than end the turn.
RESUME_ERRORS = ("unavailable", "not_found")


@dataclass
class Reading:
    """One client's view of one turn's answer, frame by frame."""

    request_id: str
    parts: list[str] = field(default_factory=list)
    last_seq: int = 0
    attempt: int = 1
    restarts: int = 0
    deltas: int = 0
    terminal: dict[str, Any] | None = None
    violations: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The answer as shown now."""
        return "".join(self.parts)

    @property
    def done(self) -> bool:
        """Whether the turn's last frame came."""
        return self.terminal is not None

    def apply(self, frame: dict[str, Any]) -> None:
        """Take one frame of this turn (frames of other turns must not be passed)."""
        kind = frame["type"]
        if kind == "chat.delta":
            self._delta(frame)
        elif kind == "chat.restart":
            self._restart(frame)
        elif kind == "chat.message":
            self.parts = [frame["message"]["content"]]
            self.terminal = frame
        elif kind in TERMINAL:
            self.terminal = frame
        else:
            self.violations.append(f"unexpected frame {frame}")

    def _delta(self, frame: dict[str, Any]) -> None:
        seq = int(frame["seq"])
        if seq != self.last_seq + 1:
            what = "repeated" if seq <= self.last_seq else "gap before"
            self.violations.append(f"{what} seq {seq} (last seen {self.last_seq})")
            if seq <= self.last_seq:
                return
        self.parts.append(frame["text"])
        self.last_seq = seq
        self.deltas += 1

    def _restart(self, frame: dict[str, Any]) -> None:
        attempt, seq = int(frame["attempt"]), int(frame["seq"])
        if attempt > self.attempt:
            self.parts.clear()
            self.attempt = attempt
            self.restarts += 1
            self.last_seq = seq
        else:  # a repeat: numbering goes on after it
            self.last_seq = max(self.last_seq, seq)
