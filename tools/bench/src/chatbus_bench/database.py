"""Reading the services' tables to see what has been persisted, and when.

The benchmark is the one outside reader the issue asks for: a turn counts as completed
when its assistant message is a row of `conversation.messages`, and the embeddings
backlog rate is rows appearing in `embeddings.message_embeddings`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg

POLL_SECONDS = 0.1


class Database:
    """One connection to the stack's database (asyncpg DSN, no SQLAlchemy dialect)."""

    def __init__(self, connection: Any) -> None:
        """Use `Database.connect`."""
        self._connection = connection

    @classmethod
    async def connect(cls, dsn: str) -> Database:
        """Connect to `dsn`."""
        return cls(await asyncpg.connect(dsn))

    async def stored_messages(self, message_ids: Iterable[str]) -> set[str]:
        """Those of `message_ids` that are rows of `conversation.messages` (primary-key lookups)."""
        ids = [uuid.UUID(message_id) for message_id in message_ids]
        if not ids:
            return set()
        rows = await self._connection.fetch(
            "SELECT id FROM conversation.messages WHERE id = ANY($1::uuid[])", ids
        )
        return {str(row["id"]) for row in rows}

    async def embedding_rows(self) -> int:
        """How many message vectors are stored (0 before the embeddings schema exists)."""
        try:
            count = await self._connection.fetchval(
                "SELECT count(*) FROM embeddings.message_embeddings"
            )
        except asyncpg.UndefinedTableError:
            return 0
        return int(count)

    async def close(self) -> None:
        """Close the connection."""
        await self._connection.close()


async def watch_persisted(
    database: Database, message_ids: Iterable[str], deadline: float
) -> dict[str, float]:
    """Poll until every message is stored or `deadline` (monotonic) passes.

    Returns message id -> the `perf_counter` time of the poll that first found it.
    """
    remaining = set(message_ids)
    found: dict[str, float] = {}
    while remaining and time.monotonic() < deadline:
        stored = await database.stored_messages(remaining)
        now = time.perf_counter()
        for message_id in stored:
            found[message_id] = now
        remaining -= stored
        if remaining:
            await asyncio.sleep(POLL_SECONDS)
    return found
