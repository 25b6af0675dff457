"""`chatbus keys`: create, list and revoke API keys in the `api_keys` bucket.

Operators run these against the bus directly (`--nats-url`); the gateway reads the same
bucket on every request, so a revoked key stops working at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from chatbus_contracts.common import utc_now
from chatbus_contracts.keys import ApiKeyRecord, new_api_key
from chatbus_contracts.streams import API_KEYS
from chatbus_runtime.bus import ensure_bucket
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue


@asynccontextmanager
async def _bucket(nats_url: str) -> AsyncIterator[KeyValue]:
    connection = await nats.connect(nats_url, allow_reconnect=False)
    try:
        yield await ensure_bucket(connection.jetstream(), API_KEYS)
    finally:
        await connection.close()


async def create_key(
    nats_url: str, user_id: str, *, role: str, name: str
) -> tuple[str, ApiKeyRecord]:
    """A new key for `user_id`: (the key, shown once; the record that is stored)."""
    key, key_id, secret_sha256 = new_api_key()
    record = ApiKeyRecord(
        key_id=key_id,
        user_id=user_id,
        role=role,
        name=name,
        secret_sha256=secret_sha256,
        created_at=utc_now(),
    )
    async with _bucket(nats_url) as bucket:
        await bucket.create(key_id, record.model_dump_json().encode())
    return key, record


async def list_keys(nats_url: str, user_id: str | None = None) -> list[ApiKeyRecord]:
    """Every live key (of `user_id`, when given), oldest first."""
    records = []
    async with _bucket(nats_url) as bucket:
        try:
            key_ids = await bucket.keys()
        except NoKeysError:
            return []
        for key_id in key_ids:
            try:
                entry = await bucket.get(key_id)
            except KeyNotFoundError:  # revoked meanwhile
                continue
            record = ApiKeyRecord.model_validate_json(entry.value or b"")
            if user_id is None or record.user_id == user_id:
                records.append(record)
    return sorted(records, key=lambda record: record.created_at)


async def revoke_key(nats_url: str, key_id: str) -> bool:
    """Delete key `key_id`; False if there is no such key."""
    async with _bucket(nats_url) as bucket:
        try:
            await bucket.get(key_id)
        except KeyNotFoundError:
            return False
        await bucket.purge(key_id)
    return True
