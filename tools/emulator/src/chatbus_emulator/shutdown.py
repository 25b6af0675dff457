"""A one-shot signal telling in-flight responses that the server is stopping."""

from __future__ import annotations

import asyncio


class ShutdownSignal:
    """Set once when the server stops, so stalled or slow responses end at once.

    Without it the server's graceful shutdown would wait for a stalled stream that,
    by design, never finishes.
    """

    def __init__(self) -> None:
        # Created lazily so the signal binds to the loop that actually serves requests.
        self._event: asyncio.Event | None = None
        self._triggered = False

    @property
    def triggered(self) -> bool:
        """Whether ``trigger`` has been called."""
        return self._triggered

    def trigger(self) -> None:
        """Release every current and future ``wait``."""
        self._triggered = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Return once the signal has been triggered."""
        if self._event is None:
            self._event = asyncio.Event()
            if self._triggered:
                self._event.set()
        await self._event.wait()
