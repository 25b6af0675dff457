"""Retries with backoff and jitter, and stream time-outs, around any provider adapter.

stream_with_retries(provider, request)
  └── for each attempt: guarded(provider.stream(request))   first-token / idle / total
        a retryable ProviderError before the first token → wait, try again
        (retry-after honoured, else exponential backoff with jitter)
        any error after a token → raised as is: a stream is never silently restarted
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from chatbus_runtime.overdue import Overdue

from .providers.base import ChatProvider, CompletionRequest, ProviderError, StreamEvent, TextDelta

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient provider error is retried."""

    max_retries: int = 2
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before retry number `attempt + 1`; the provider's `retry-after` wins."""
        if retry_after is not None:
            return retry_after
        ceiling = min(self.base_delay_seconds * 2**attempt, self.max_delay_seconds)
        return random.uniform(ceiling / 2, ceiling)  # jitter spreads replicas' retries


@dataclass(frozen=True)
class StreamTimeouts:
    """Bounds on a provider stream: until the first token, between tokens, overall."""

    first_token_seconds: float = 60.0
    idle_seconds: float = 60.0
    total_seconds: float = 600.0


async def guarded(
    events: AsyncIterator[StreamEvent], timeouts: StreamTimeouts
) -> AsyncIterator[StreamEvent]:
    """Pass events through; a stalled stream becomes `ProviderError("provider_timeout")`.

    Only the time spent waiting for the provider counts, not the reader's. Closing this
    generator closes `events`, which closes the upstream HTTP stream.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeouts.total_seconds
    first = True
    try:
        with Overdue() as overdue:
            while True:
                limit = timeouts.first_token_seconds if first else timeouts.idle_seconds
                now = loop.time()
                wait = min(limit, deadline - now)
                try:
                    event = await overdue.wait(anext(events), now + wait)
                except StopAsyncIteration:
                    return
                except TimeoutError as error:
                    what = "first token" if first else "next token"
                    raise ProviderError(
                        "provider_timeout", f"no {what} within {wait:.1f}s", retryable=first
                    ) from error
                if isinstance(event, TextDelta):
                    first = False
                yield event
    finally:
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]


async def stream_with_retries(
    provider: ChatProvider,
    request: CompletionRequest,
    policy: RetryPolicy,
    timeouts: StreamTimeouts,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[StreamEvent]:
    """One provider's stream, retried while nothing has been yielded yet."""
    attempt = 0
    while True:
        started = False
        try:
            async for event in guarded(provider.stream(request), timeouts):
                started = started or isinstance(event, TextDelta)
                yield event
            return
        except ProviderError as error:
            if started or not error.retryable or attempt >= policy.max_retries:
                raise
            delay = policy.delay(attempt, error.retry_after_seconds)
            logger.info("%s: %s; retry %d in %.2fs", provider.name, error, attempt + 1, delay)
            await sleep(delay)
            attempt += 1
