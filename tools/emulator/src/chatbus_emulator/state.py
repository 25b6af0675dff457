"""Mutable emulator state: defaults, the script queue and the request log."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from chatbus_emulator.records import RequestRecord
from chatbus_emulator.script import ScriptedResponse, coerce_script

DEFAULT_MODELS: tuple[str, ...] = ("emulator-openai", "emulator-anthropic")


class EmulatorState:
    """Everything one emulator instance knows; shared by the HTTP app and in-process tests.

    The default behaviour (``reply``, delays) applies whenever the script queue is empty.
    Attributes may be changed between requests.
    """

    def __init__(
        self,
        *,
        reply: str | None = None,
        first_token_delay_ms: float = 0.0,
        inter_token_delay_ms: float = 0.0,
        models: Sequence[str] = DEFAULT_MODELS,
    ) -> None:
        """Create a state.

        ``reply=None`` answers ``"Emulated reply to: <last user text>"``.
        """
        if first_token_delay_ms < 0 or inter_token_delay_ms < 0:
            raise ValueError("delays must be >= 0")
        self.reply = reply
        self.first_token_delay_ms = first_token_delay_ms
        self.inter_token_delay_ms = inter_token_delay_ms
        self.models: tuple[str, ...] = tuple(models)
        self._script: deque[ScriptedResponse] = deque()
        self._requests: list[RequestRecord] = []
        # Ids keep increasing across resets so a stale record is never mistaken for a new one.
        self._ids = itertools.count(1)

    def script(self, *responses: ScriptedResponse | Mapping[str, Any]) -> int:
        """Queue responses for upcoming completion requests (FIFO); return the queue length.

        All items are validated before any is queued, so a bad item queues nothing.
        """
        parsed = [coerce_script(item) for item in responses]
        self._script.extend(parsed)
        return len(self._script)

    def pending_script(self) -> list[ScriptedResponse]:
        """Queued responses not yet consumed, next first."""
        return list(self._script)

    def take_script(self) -> ScriptedResponse | None:
        """Pop the next queued response, or ``None`` to use the defaults."""
        return self._script.popleft() if self._script else None

    def requests(self) -> list[RequestRecord]:
        """Every completion request received since the last reset, oldest first."""
        return list(self._requests)

    def reset(self) -> None:
        """Forget queued responses and recorded requests (defaults are kept)."""
        self._script.clear()
        self._requests.clear()

    def record_request(
        self, *, path: str, headers: dict[str, str], body: Any, stream: bool
    ) -> RequestRecord:
        """Log a newly received completion request and return its live record."""
        record = RequestRecord(
            id=next(self._ids),
            path=path,
            headers=headers,
            body=body,
            received_at=time.time(),
            stream=stream,
        )
        self._requests.append(record)
        return record
