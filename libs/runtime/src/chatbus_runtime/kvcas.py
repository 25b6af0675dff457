"""Read-modify-write of one key-value entry, atomic across processes (compare-and-set).

Every writer passes the revision it read; JetStream refuses the write if another
writer got there first, and the change is computed again from the new value.

A writer that is most often the only one on its keys (the usage service on its tallies)
keeps what it last wrote in a `RevisionCache`: its first attempt writes on that revision
without reading, and only a refused write costs the read.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

R = TypeVar("R")

# A write that lost the race is retried after a jittered pause that grows with the attempt.
_BACKOFF_SECONDS = 0.002


class ContentionError(Exception):
    """The entry changed under every attempt: too many writers at once."""


class RevisionCache:
    """Per key, the value and revision this process last read or wrote; the newest `size`."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[bytes | None, int | None]] = OrderedDict()

    def get(self, key: str) -> tuple[bytes | None, int | None] | None:
        """(value, revision), or None when the key is not remembered."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, value: bytes | None, revision: int | None) -> None:
        """Remember the entry (revision None: the key had no entry)."""
        self._entries[key] = (value, revision)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop the key: another writer changed it."""
        self._entries.pop(key, None)


# Another writer got there first (`create` reads the key after a refusal, which may be
# gone again by then).
_LOST_RACE = (KeyWrongLastSequenceError, KeyNotFoundError)


async def _write(kv: KeyValue, key: str, new: bytes, revision: int | None) -> int:
    """Create (no entry yet) or update on `revision`; the new revision."""
    if revision is None:
        return await kv.create(key, new)
    return await kv.update(key, new, last=revision)


async def _read(kv: KeyValue, key: str) -> tuple[bytes | None, int | None]:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None, None
    return entry.value, entry.revision


async def compare_and_set(
    kv: KeyValue,
    key: str,
    change: Callable[[bytes | None], tuple[bytes | None, R]],
    *,
    attempts: int = 100,
    cache: RevisionCache | None = None,
) -> R:
    """Apply `change` to the entry's value (None: no entry) and write what it returns.

    `change` returns (new value, result); a new value of None writes nothing (e.g. a
    refusal). It may run several times, so it must have no side effects. With a `cache`
    the first attempt starts from the remembered entry: a write on a stale revision is
    refused by the server, but a decision not to write is not, so that one is made again
    on a fresh read.
    """
    if cache is not None and (remembered := cache.get(key)) is not None:
        new, result = change(remembered[0])
        if new is not None:
            try:
                cache.put(key, new, await _write(kv, key, new, remembered[1]))
                return result
            except _LOST_RACE:
                pass
        cache.forget(key)
    for attempt in range(attempts):
        current, revision = await _read(kv, key)
        new, result = change(current)
        if new is None:
            if cache is not None:
                cache.put(key, current, revision)
            return result
        try:
            written = await _write(kv, key, new, revision)
        except _LOST_RACE:
            await asyncio.sleep(random.uniform(0, _BACKOFF_SECONDS * (attempt + 1)))
            continue
        if cache is not None:
            cache.put(key, new, written)
        return result
    raise ContentionError(f"{key}: changed under each of {attempts} attempts")


async def add_to_counter(
    kv: KeyValue, key: str, amount: int, *, cache: RevisionCache | None = None
) -> int:
    """Add `amount` to an integer entry (missing = 0); the new value."""

    def add(current: bytes | None) -> tuple[bytes, int]:
        total = int(current or b"0") + amount
        return str(total).encode(), total

    return await compare_and_set(kv, key, add, cache=cache)


async def read_counter(kv: KeyValue, key: str) -> int:
    """An integer entry's value (missing = 0)."""
    value, _ = await _read(kv, key)
    return int(value or b"0")
