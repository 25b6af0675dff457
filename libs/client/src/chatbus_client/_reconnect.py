"""How often, and how patiently, a dropped socket is reconnected."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Reconnect:
    """Bounded exponential backoff for reconnecting a dropped WebSocket.

    The first attempt is immediate, then they wait `first_delay`, `first_delay * factor`,
    ... up to `max_delay` seconds, each shortened by up to `jitter` (a fraction) so that
    many clients of a restarted gateway do not come back in step. After `attempts`
    failed attempts in a row the unfinished turns fail with `connection_lost`;
    `attempts=0` never reconnects.
    """

    attempts: int = 12
    first_delay: float = 0.2
    max_delay: float = 5.0
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 0 or self.first_delay < 0 or self.max_delay < self.first_delay:
            raise ValueError("need attempts >= 0 and 0 <= first_delay <= max_delay")
        if self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("need factor >= 1 and 0 <= jitter <= 1")

    def delays(self) -> Iterator[float]:
        """The seconds to wait before each attempt: `attempts` values, the first 0."""
        delay = self.first_delay
        for attempt in range(self.attempts):
            if attempt == 0:
                yield 0.0
                continue
            yield delay * (1 - self.jitter * random.random())
            delay = min(delay * self.factor, self.max_delay)
