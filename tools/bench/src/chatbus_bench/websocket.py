"""The chatbus arm: a WebSocket client speaking protocol v1 to the gateway, one turn at a time.

Each socket belongs to its own user (a dev JWT as `chatbus token` mints it): the live
`conversation.*` frames of a user go to every socket of that user, and a benchmark
with one user would measure that fan-out instead of the relay. Every turn starts a new
conversation, so the prompt the emulator gets is the same single message in both arms.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from .samples import Expected, TurnSample, chunk_times_to_sample

# Frames a turn ends with.
_TERMINAL = ("chat.end", "chat.error", "chat.stopped")


async def open_socket(ws_url: str, token: str, open_seconds: float = 30.0) -> ClientConnection:
    """An authenticated socket with the library's defaults (permessage-deflate offered).

    Client pings are off: the gateway pings every socket itself.
    """
    return await connect(
        ws_url,
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=open_seconds,
        ping_interval=None,
        proxy=None,
        max_queue=None,
    )


async def open_sockets(
    ws_url: str, tokens: Sequence[str], parallel: int = 64
) -> list[ClientConnection]:
    """One socket per token, at most `parallel` handshakes at a time; raises on a failure."""
    gate = asyncio.Semaphore(parallel)

    async def one(token: str) -> ClientConnection:
        async with gate:
            return await open_socket(ws_url, token)

    return list(await asyncio.gather(*(one(token) for token in tokens)))


async def close_sockets(sockets: Sequence[ClientConnection], parallel: int = 256) -> None:
    """Close every socket, ignoring ones that are already gone."""
    gate = asyncio.Semaphore(parallel)

    async def one(socket: ClientConnection) -> None:
        async with gate:
            try:
                await asyncio.wait_for(socket.close(), 10)
            except (TimeoutError, OSError, WebSocketException):
                socket.transport.abort()

    await asyncio.gather(*(one(socket) for socket in sockets))


class ChatbusArm:
    """Turns over one socket; reconnects after the socket failed."""

    def __init__(self, ws_url: str, token: str, socket: ClientConnection | None = None) -> None:
        """Use `socket` if given (already open), else connect on the first turn."""
        self._ws_url = ws_url
        self._token = token
        self._socket = socket

    async def turn(self, content: str, expected: Expected, time_limit: float) -> TurnSample:
        """Send `chat.send`, read frames until the turn ends; times in ms since the send."""
        times: list[float] = []
        texts: list[str] = []
        seqs: list[int] = []
        total: float | None = None
        accepted: float | None = None
        error: str | None = None
        started = time.perf_counter()
        sent_at_unix = time.time()
        try:
            async with asyncio.timeout(time_limit):
                if self._socket is None:
                    self._socket = await open_socket(self._ws_url, self._token)
                    started, sent_at_unix = time.perf_counter(), time.time()
                socket = self._socket
                frame_id = uuid.uuid4().hex
                await socket.send(
                    json.dumps({"type": "chat.send", "id": frame_id, "content": content})
                )
                request_id: str | None = None
                while total is None:
                    raw = await socket.recv()
                    arrived = time.perf_counter()
                    frame = json.loads(raw)
                    kind = frame.get("type")
                    if frame.get("id") == frame_id:  # chat.accepted, or a refusal
                        request_id = frame.get("request_id")
                        accepted = (arrived - started) * 1000
                        if kind == "chat.error":
                            total, error = (arrived - started) * 1000, str(frame.get("code"))
                    elif request_id is None or frame.get("request_id") != request_id:
                        continue  # a live conversation.* frame, or a late one of an old turn
                    elif kind == "chat.delta":
                        times.append((arrived - started) * 1000)
                        texts.append(frame["text"])
                        seqs.append(frame["seq"])
                    elif kind in _TERMINAL:
                        total = (arrived - started) * 1000
                        if kind != "chat.end":
                            error = str(frame.get("code") or kind)
        except TimeoutError:
            # Frames of this turn may still come; a fresh socket keeps them out of the next.
            error = "timeout"
            await self.aclose()
        except (OSError, WebSocketException) as failure:
            error = type(failure).__name__
            self._socket = None
        return chunk_times_to_sample(
            "chatbus",
            times,
            texts,
            seqs,
            total=total,
            expected=expected,
            error=error,
            accepted=accepted if error is None else None,
            sent_at_unix=sent_at_unix,
            sent_at=started,
        )

    async def aclose(self) -> None:
        """Close the socket."""
        if self._socket is not None:
            await close_sockets([self._socket])
            self._socket = None
