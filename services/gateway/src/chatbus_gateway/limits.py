"""Per-user rate limits, exact across any number of gateway replicas.

Requests per minute: one `RequestWindow` per user in the `rate_limits` bucket, taken
with compare-and-set, so two replicas can never both admit the last request of a
window. Tokens per day: a counter the usage service adds every billed call to; a user
at or over the limit is refused until the next UTC midnight.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from chatbus_contracts.limits import (
    REQUEST_WINDOW_SECONDS,
    RequestWindow,
    request_window_key,
    tokens_day_key,
)
from chatbus_contracts.streams import RATE_LIMITS
from chatbus_runtime.bus import Bucket
from chatbus_runtime.kvcas import compare_and_set, read_counter
from faststream.nats import NatsBroker
from pydantic import BaseModel, ConfigDict, Field

from .auth import Identity


class RoleLimits(BaseModel):
    """The limits of one role; None = unlimited."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_day: int | None = Field(default=None, ge=1)


class RateLimited(Exception):
    """A request over a limit; `retry_after_ms` says when it would be admitted."""

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_ms = retry_after_ms


class RateLimiter:
    """Admits or refuses a user's next turn by the limits of their role."""

    def __init__(
        self,
        broker: NatsBroker,
        limits: dict[str, RoleLimits],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._bucket = Bucket(broker, RATE_LIMITS)

    async def admit(self, identity: Identity) -> None:
        """Count one request; raises `RateLimited` (nothing counted) when over a limit."""
        limits = self._limits.get(identity.role)
        if limits is None:
            return
        if limits.tokens_per_day is not None:
            await self._check_tokens(identity.user_id, limits.tokens_per_day)
        if limits.requests_per_minute is not None:
            await self._take_request(identity.user_id, limits.requests_per_minute)

    async def _check_tokens(self, user_id: str, limit: int) -> None:
        now = datetime.fromtimestamp(self._clock(), UTC)
        used = await read_counter(await self._bucket.kv(), tokens_day_key(user_id, now.date()))
        if used >= limit:
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            wait_ms = math.ceil((midnight - now).total_seconds() * 1000)
            raise RateLimited(f"{used} of {limit} tokens used today", wait_ms)

    async def _take_request(self, user_id: str, limit: int) -> None:
        def take(current: bytes | None) -> tuple[bytes | None, int]:
            now = self._clock()
            window = RequestWindow.model_validate_json(current) if current else None
            if window is None or now - window.start >= REQUEST_WINDOW_SECONDS:
                window = RequestWindow(start=now, count=0)
            if window.count >= limit:
                wait_seconds = window.start + REQUEST_WINDOW_SECONDS - now
                return None, max(1, math.ceil(wait_seconds * 1000))
            taken = RequestWindow(start=window.start, count=window.count + 1)
            return taken.model_dump_json().encode(), 0

        wait_ms = await compare_and_set(await self._bucket.kv(), request_window_key(user_id), take)
        if wait_ms:
            raise RateLimited(f"more than {limit} requests in a minute", wait_ms)
