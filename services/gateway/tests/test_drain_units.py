"""`Drain`: idle sockets close at once, streaming ones when done or at the deadline."""

from __future__ import annotations

import asyncio

from chatbus_gateway.drain import Drain


class FakeSession:
    def __init__(self, streaming: bool) -> None:
        self.streaming = streaming
        self.closed_at: float | None = None

    async def close_for_restart(self) -> None:
        self.closed_at = asyncio.get_running_loop().time()


async def test_idle_sockets_close_at_once_and_streaming_ones_when_their_stream_ends() -> None:
    drain = Drain()
    idle, finishing, endless = FakeSession(False), FakeSession(True), FakeSession(True)
    for session in (idle, finishing, endless):
        drain.add(session)
    loop = asyncio.get_running_loop()
    started = loop.time()
    loop.call_later(0.3, setattr, finishing, "streaming", False)
    await drain.run(1.0)
    assert drain.draining
    assert idle.closed_at is not None and idle.closed_at - started < 0.1
    assert finishing.closed_at is not None and 0.3 <= finishing.closed_at - started < 0.6
    assert endless.closed_at is not None and endless.closed_at - started >= 1.0
