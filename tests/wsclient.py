"""A small WebSocket test client speaking protocol v1."""

from __future__ import annotations

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


async def receive(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await ws.recv())
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
