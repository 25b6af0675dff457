"""Play a planned answer to one client, step by step, while watching for disconnects."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from chatbus_emulator.records import Outcome, RequestRecord
from chatbus_emulator.shutdown import ShutdownSignal


@dataclass(frozen=True, slots=True)
class Start:
    """Send the status line and headers."""

    status: int
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Write:
    """Send part of the body; ``token`` marks a write that carries one content token."""

    data: bytes
    token: bool = False


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait before the next step."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Stall:
    """Go silent but keep the connection open until the client or the server gives up."""


@dataclass(frozen=True, slots=True)
class Cut:
    """Drop the connection without finishing the body."""


Step = Start | Write | Pause | Stall | Cut

# uvicorn closes the socket when an app returns mid-body, which is exactly how the
# emulator cuts a stream, but it also logs that as an error. The flag lives in the
# request's context, which uvicorn's log call shares, so only deliberate cuts are hushed.
_deliberate_cut: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "chatbus_emulator_deliberate_cut", default=False
)
_UNFINISHED_MESSAGE = "ASGI callable returned without completing response."


class _DeliberateCutFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_deliberate_cut.get() and record.getMessage() == _UNFINISHED_MESSAGE)


def install_cut_log_filter() -> None:
    """Stop uvicorn from logging the emulator's deliberate connection cuts as errors."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DeliberateCutFilter) for f in logger.filters):
        logger.addFilter(_DeliberateCutFilter())


async def _wait_for_disconnect(receive: Receive) -> float:
    # The request body has already been read, so the server only wakes this up when
    # the client goes away: no polling involved.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return time.time()


class Delivery:
    """ASGI app that plays ``steps`` to the client and keeps ``record`` up to date.

    Runs the steps, a disconnect watcher and the shutdown signal side by side; whichever
    finishes first decides the outcome, and the others are cancelled at once.
    """

    def __init__(
        self, steps: Iterable[Step], record: RequestRecord, shutdown: ShutdownSignal
    ) -> None:
        """Prepare to play ``steps``; nothing is sent until the app is called."""
        self._steps = steps
        self._record = record
        self._shutdown = shutdown
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Deliver the response, then record how it ended."""
        watcher = asyncio.create_task(_wait_for_disconnect(receive))
        player = asyncio.create_task(self._play(send, watcher.done))
        stopper = asyncio.create_task(self._shutdown.wait())
        tasks = (player, watcher, stopper)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._finish("aborted")
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if player.done() and not player.cancelled():
            outcome = player.result()  # re-raises a bug in the player
        elif watcher.done() and not watcher.cancelled():
            outcome = "disconnected"
        else:
            outcome = "aborted"
        if outcome == "disconnected":
            self._record.disconnected_at = watcher.result()
        self._finish(outcome)

        if outcome in ("cut", "aborted"):
            if self._started:
                _deliberate_cut.set(True)
            else:
                await _send_unavailable(send)

    def _finish(self, outcome: Outcome) -> None:
        self._record.outcome = outcome
        self._record.finished_at = time.time()

    async def _play(self, send: Send, client_gone: Callable[[], bool]) -> Outcome:
        record = self._record
        for step in self._steps:
            if client_gone():
                return "disconnected"
            match step:
                case Start(status=status, headers=headers):
                    await send(
                        {
                            "type": "http.response.start",
                            "status": status,
                            "headers": [
                                (k.encode("latin-1"), v.encode("latin-1")) for k, v in headers
                            ],
                        }
                    )
                    self._started = True
                    record.status = status
                case Write(data=data, token=token):
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                    record.chunks_sent += 1
                    record.tokens_sent += int(token)
                case Pause(seconds=seconds):
                    await asyncio.sleep(seconds)
                case Stall():
                    # Never resolves: the disconnect watcher or the shutdown signal ends it.
                    await asyncio.get_running_loop().create_future()
                case Cut():
                    return "cut"
        if client_gone():
            return "disconnected"
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return "completed"


async def _send_unavailable(send: Send) -> None:
    # Only reached when the server stops before a response began.
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": b"emulator shutting down"})
