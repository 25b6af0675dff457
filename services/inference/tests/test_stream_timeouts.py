"""`guarded`: a provider stream's first-token, idle and total time-outs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from chatbus_contracts.common import TokenUsage
from chatbus_inference.providers.base import Finished, ProviderError, StreamEvent, TextDelta
from chatbus_inference.resilience import StreamTimeouts, guarded

FINISHED = Finished(TokenUsage(prompt_tokens=1, completion_tokens=1), "stop", "m")


class Upstream:
    """Yields a delta after each of `gaps` seconds, then `Finished`; notes when closed."""

    def __init__(self, *gaps: float) -> None:
        self.gaps = gaps
        self.closed = False

    async def events(self) -> AsyncIterator[StreamEvent]:
        try:
            for index, gap in enumerate(self.gaps):
                await asyncio.sleep(gap)
                yield TextDelta(f"t{index}")
            yield FINISHED
        finally:
            self.closed = True


async def _read(upstream: Upstream, timeouts: StreamTimeouts) -> list[StreamEvent]:
    return [event async for event in guarded(upstream.events(), timeouts)]


async def test_a_steady_stream_longer_than_the_idle_bound_passes_whole() -> None:
    upstream = Upstream(*[0.03] * 15)  # 0.45 s in all, never 0.1 s without a token
    events = await _read(upstream, StreamTimeouts(0.1, 0.1, 5.0))
    assert len(events) == 16 and events[-1] == FINISHED and upstream.closed


async def test_no_first_token_in_time_is_a_retryable_timeout() -> None:
    upstream = Upstream(0.5)
    with pytest.raises(ProviderError) as timed_out:
        await _read(upstream, StreamTimeouts(0.1, 5.0, 5.0))
    assert timed_out.value.code == "provider_timeout" and timed_out.value.retryable
    assert "first token" in timed_out.value.message and upstream.closed


async def test_a_stall_after_tokens_is_a_final_timeout() -> None:
    upstream = Upstream(0.01, 0.01, 0.5)
    with pytest.raises(ProviderError) as timed_out:
        await _read(upstream, StreamTimeouts(5.0, 0.1, 5.0))
    assert timed_out.value.code == "provider_timeout" and not timed_out.value.retryable
    assert "next token" in timed_out.value.message and upstream.closed


async def test_the_total_bound_ends_a_stream_that_never_stalls() -> None:
    upstream = Upstream(*[0.03] * 100)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ProviderError) as timed_out:
        await _read(upstream, StreamTimeouts(5.0, 5.0, 0.3))
    assert timed_out.value.code == "provider_timeout"
    assert 0.25 < loop.time() - started < 1.0


async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    upstream = Upstream(0.01, 5.0)
    reading = asyncio.create_task(_read(upstream, StreamTimeouts(0.2, 0.2, 5.0)))
    await asyncio.sleep(0.05)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert upstream.closed
    await asyncio.sleep(0.3)  # past both bounds: nothing left armed to cancel anything


async def test_the_time_spent_by_the_reader_does_not_count_as_a_stall() -> None:
    upstream = Upstream(*[0.01] * 5)
    events: list[StreamEvent] = []
    async for event in guarded(upstream.events(), StreamTimeouts(0.1, 0.1, 5.0)):
        events.append(event)
        await asyncio.sleep(0.15)  # the reader is slow (publishing under load, say)
    assert len(events) == 6
