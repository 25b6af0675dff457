"""Compare-and-set on a key-value entry, with and without a `RevisionCache`, on nats-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from chatbus_runtime.kvcas import RevisionCache, add_to_counter, compare_and_set, read_counter
from nats.js.kv import KeyValue

from .eventbus import jetstream
from .infra import Infra


class CountingReads:
    """A bucket that counts the reads made through it (writes pass straight on)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self.reads = 0

    async def get(self, key: str) -> object:
        self.reads += 1
        return await self.kv.get(key)

    def __getattr__(self, name: str) -> object:
        return getattr(self.kv, name)


@pytest.fixture
async def kv(infra: Infra) -> AsyncIterator[KeyValue]:
    async with jetstream(infra) as js:
        name = f"kvcas_{uuid.uuid4().hex[:8]}"
        yield await js.create_key_value(bucket=name)
        await js.delete_key_value(name)


async def test_a_cached_writer_writes_without_reading(kv: KeyValue) -> None:
    counting = CountingReads(kv)
    cache = RevisionCache()
    for _ in range(5):
        await add_to_counter(counting, "tokens", 10, cache=cache)  # type: ignore[arg-type]
    assert await read_counter(kv, "tokens") == 50
    assert counting.reads == 1  # the first call, on a key it did not know


async def test_writers_with_and_without_caches_lose_nothing(kv: KeyValue) -> None:
    caches = [RevisionCache(), RevisionCache(), None]

    async def writer(cache: RevisionCache | None) -> None:
        for _ in range(20):
            await add_to_counter(kv, "tokens", 1, cache=cache)

    await asyncio.gather(*(writer(cache) for cache in caches))
    assert await read_counter(kv, "tokens") == 60


async def test_a_decision_not_to_write_is_made_on_a_fresh_read(kv: KeyValue) -> None:
    """The cache says nothing to settle; another writer has since added something."""
    cache = RevisionCache()
    await add_to_counter(kv, "held", 0, cache=cache)
    await kv.put("held", b"7")  # another writer; this cache still remembers 0

    def settle(current: bytes | None) -> tuple[bytes | None, int]:
        held = int(current or b"0")
        return (b"0" if held else None), held

    assert await compare_and_set(kv, "held", settle, cache=cache) == 7
    assert await read_counter(kv, "held") == 0


async def test_the_cache_keeps_the_newest_keys_only() -> None:
    cache = RevisionCache(size=2)
    for key in ("a", "b", "c"):
        cache.put(key, b"1", 1)
    cache.get("b")
    cache.put("d", b"1", 1)
    assert [key for key in "abcd" if cache.get(key) is not None] == ["b", "d"]
