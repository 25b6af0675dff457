"""A gateway's graceful shutdown: on SIGTERM it drains before uvicorn closes anything.

    SIGTERM ──▶ draining: /readyz answers 503, new sockets are refused (HTTP 503),
                new turns and resumes answer `unavailable` (retryable)
            ──▶ open streams go on relaying; a socket with nothing streaming is closed
                with 1012 at once, the others as soon as their streams end
            ──▶ after `drain_seconds`, every socket left is closed with 1012
            ──▶ uvicorn's own shutdown: listeners, HTTP connections, lifespan (NATS)

A client reconnects on 1012 (to another replica) and resumes its turns from the last
`seq` it saw: generation never depended on the socket, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Callable
from typing import Protocol

import uvicorn
from chatbus_runtime.service import tune_garbage_collector

logger = logging.getLogger(__name__)
CLOSE_TIMEOUT_SECONDS = 1.0


class Drainable(Protocol):
    """An open socket's session, as the drain sees it."""

    @property
    def streaming(self) -> bool:
        """Whether a turn or resume is being relayed on it."""

    async def close_for_restart(self) -> None:
        """Close the socket with 1012 (service restart)."""


class Drain:
    """Whether the gateway is draining, and the open sockets it will close."""

    def __init__(self) -> None:
        self.draining = False
        self._sockets: set[Drainable] = set()

    def add(self, session: Drainable) -> None:
        """Track an open socket."""
        self._sockets.add(session)

    def discard(self, session: Drainable) -> None:
        """Forget a closed socket."""
        self._sockets.discard(session)

    async def run(self, seconds: float, give_up: Callable[[], bool] = lambda: False) -> None:
        """Drain for at most `seconds` (or until `give_up()`), then close every socket."""
        self.draining = True
        logger.info("draining %d sockets for up to %.0f s", len(self._sockets), seconds)
        deadline = asyncio.get_running_loop().time() + seconds
        while self._sockets and not give_up():
            idle = [s for s in self._sockets if not s.streaming]
            if asyncio.get_running_loop().time() >= deadline:
                idle = list(self._sockets)
            self._sockets.difference_update(idle)
            await asyncio.gather(*(_close(session) for session in idle))
            await asyncio.sleep(0.1)


async def _close(session: Drainable) -> None:
    # A client that does not read must not hold up the drain (uvicorn closes it after).
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(session.close_for_restart(), CLOSE_TIMEOUT_SECONDS)


class DrainingServer(uvicorn.Server):
    """uvicorn, with the drain before its shutdown (which would close sockets at once)."""

    def __init__(self, config: uvicorn.Config, drain: Drain, drain_seconds: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._drain_seconds = drain_seconds

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start (the app's lifespan first), then `tune_garbage_collector`."""
        await super().startup(sockets)
        tune_garbage_collector()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Drain (a second Ctrl-C cuts it short), then shut down as uvicorn does.

        HTTP responses still streaming then (`/v1/chat/completions` SSE) get what is
        left of the same `drain_seconds`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._drain_seconds
        await self._drain.run(self._drain_seconds, give_up=lambda: self.force_exit)
        self.config.timeout_graceful_shutdown = max(math.ceil(deadline - loop.time()), 1)
        await super().shutdown(sockets)
