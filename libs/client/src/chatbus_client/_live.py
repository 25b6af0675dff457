"""Live `conversation.*` frames as an async iterator, for as long as the caller wants them."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

from ._frames import ConversationFrame


class ConversationEvents:
    """Every `conversation.created|updated|deleted` frame from subscription on.

    `async for frame in events` waits for the next one; the iteration ends when
    `close()` is called or the client closes. Frames are best effort (see
    docs/protocol.md): after a reconnect, reload with `list_conversations()`.
    """

    def __init__(self, unsubscribe: Callable[[ConversationEvents], None]) -> None:
        self._unsubscribe = unsubscribe
        self._frames: deque[ConversationFrame] = deque()
        self._changed = asyncio.Event()
        self._closed = False

    def _push(self, frame: ConversationFrame) -> None:
        if not self._closed:
            self._frames.append(frame)
            self._changed.set()

    def close(self) -> None:
        """Stop receiving; frames already received can still be read."""
        if not self._closed:
            self._closed = True
            self._unsubscribe(self)
            self._changed.set()

    def __aiter__(self) -> AsyncIterator[ConversationFrame]:
        return self

    async def __anext__(self) -> ConversationFrame:
        while not self._frames:
            if self._closed:
                raise StopAsyncIteration
            self._changed.clear()
            await self._changed.wait()
        return self._frames.popleft()
