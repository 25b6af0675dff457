"""Open-loop load: many concurrent turns per socket, sent on a schedule, not when one ends.

The protocol lets several turns stream on one socket at once; a reader task per socket
sorts the frames out by frame id (`chat.accepted`, refusals) and request id (deltas,
the end). What counts as completed is decided elsewhere (the assistant message in
Postgres); this side records when each turn was sent, accepted, ended or refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import WebSocketException


@dataclass
class TrackedTurn:
    """One open-loop turn; times are `perf_counter` readings."""

    sent_at: float
    accepted_at: float | None = None
    ended_at: float | None = None
    assistant_message_id: str | None = None
    error: str | None = None


class MultiplexSocket:
    """A socket with a reader task; `send()` starts a turn and returns its record at once."""

    def __init__(self, socket: ClientConnection) -> None:
        """Start reading `socket` right away."""
        self._socket = socket
        self._by_frame: dict[str, TrackedTurn] = {}
        self._by_request: dict[str, TrackedTurn] = {}
        self._reader = asyncio.create_task(self._read())

    async def send(self, content: str) -> TrackedTurn:
        """Send a new turn (a new conversation)."""
        frame_id = uuid.uuid4().hex
        turn = TrackedTurn(sent_at=time.perf_counter())
        self._by_frame[frame_id] = turn
        try:
            await self._socket.send(
                json.dumps({"type": "chat.send", "id": frame_id, "content": content})
            )
        except (OSError, WebSocketException) as failure:
            turn.error = type(failure).__name__
        return turn

    async def _read(self) -> None:
        try:
            async for raw in self._socket:
                self._handle(json.loads(raw), time.perf_counter())
        except (OSError, WebSocketException):
            pass
        for turn in [*self._by_frame.values(), *self._by_request.values()]:
            if turn.ended_at is None and turn.error is None:
                turn.error = "socket closed"

    def _handle(self, frame: dict[str, object], arrived: float) -> None:
        kind = frame.get("type")
        frame_id = frame.get("id")
        if isinstance(frame_id, str) and frame_id in self._by_frame:
            turn = self._by_frame.pop(frame_id)
            if kind == "chat.accepted":
                turn.accepted_at = arrived
                turn.assistant_message_id = str(frame["assistant_message_id"])
                self._by_request[str(frame["request_id"])] = turn
            else:
                turn.error = str(frame.get("code") or kind)
            return
        if kind in ("chat.end", "chat.error", "chat.stopped"):
            turn_or_none = self._by_request.pop(str(frame.get("request_id")), None)
            if turn_or_none is not None:
                turn_or_none.ended_at = arrived
                if kind != "chat.end":
                    turn_or_none.error = str(frame.get("code") or kind)

    async def aclose(self) -> None:
        """Stop reading (the socket itself is closed by its owner)."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
