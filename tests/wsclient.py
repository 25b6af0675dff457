"""A small WebSocket test client speaking protocol v1."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection


@dataclass
class Turn:
    """Every frame of one turn, from `chat.accepted` to `chat.end` or `chat.error`."""

    accepted: dict[str, Any]
    deltas: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        return "".join(delta["text"] for delta in self.deltas)


LIVE_TYPES = ("conversation.created", "conversation.updated", "conversation.deleted")


async def receive(ws: ClientConnection, *, live: bool = False) -> dict[str, Any]:
    """The next frame; live `conversation.*` frames are skipped unless `live`."""
    while True:
        frame: dict[str, Any] = json.loads(await ws.recv())
        if live or frame["type"] not in LIVE_TYPES:
            return frame


async def receive_live(
    ws: ClientConnection, frame_type: str, within_seconds: float
) -> dict[str, Any]:
    """The next frame of `frame_type`, skipping every other, within `within_seconds`."""
    async with asyncio.timeout(within_seconds):
        while True:
            frame = await receive(ws, live=True)
            if frame["type"] == frame_type:
                return frame


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def read_turn(ws: ClientConnection) -> Turn:
    """Read frames until the turn ends; fails on an unexpected frame."""
    accepted = await receive(ws)
    assert accepted["type"] == "chat.accepted", accepted
    turn = Turn(accepted=accepted)
    while True:
        frame = await receive(ws)
        if frame["type"] == "chat.delta":
            turn.deltas.append(frame)
        elif frame["type"] == "chat.end":
            turn.end = frame
            return turn
        elif frame["type"] == "chat.error":
            turn.error = frame
            return turn
        else:
            raise AssertionError(f"unexpected frame {frame}")
