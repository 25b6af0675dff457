"""Read-modify-write of one key-value entry, atomic across processes (compare-and-set).

Every writer passes the revision it read; JetStream refuses the write if another
writer got there first, and the change is computed again from the new value.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import TypeVar

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

R = TypeVar("R")

# A write that lost the race is retried after a jittered pause that grows with the attempt.
_BACKOFF_SECONDS = 0.002


class ContentionError(Exception):
    """The entry changed under every attempt: too many writers at once."""


async def compare_and_set(
    kv: KeyValue,
    key: str,
    change: Callable[[bytes | None], tuple[bytes | None, R]],
    *,
    attempts: int = 100,
) -> R:
    """Apply `change` to the entry's value (None: no entry) and write what it returns.

    `change` returns (new value, result); a new value of None writes nothing (e.g. a
    refusal). It may run several times, so it must have no side effects.
    """
    for attempt in range(attempts):
        try:
            entry = await kv.get(key)
            current, revision = entry.value, entry.revision
        except KeyNotFoundError:
            current, revision = None, None
        new, result = change(current)
        if new is None:
            return result
        try:
            if revision is None:
                await kv.create(key, new)
            else:
                await kv.update(key, new, last=revision)
        except KeyWrongLastSequenceError:
            await asyncio.sleep(random.uniform(0, _BACKOFF_SECONDS * (attempt + 1)))
            continue
        return result
    raise ContentionError(f"{key}: changed under each of {attempts} attempts")


async def add_to_counter(kv: KeyValue, key: str, amount: int) -> int:
    """Add `amount` to an integer entry (missing = 0); the new value."""

    def add(current: bytes | None) -> tuple[bytes, int]:
        total = int(current or b"0") + amount
        return str(total).encode(), total

    return await compare_and_set(kv, key, add)


async def read_counter(kv: KeyValue, key: str) -> int:
    """An integer entry's value (missing = 0)."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return 0
    return int(entry.value or b"0")
