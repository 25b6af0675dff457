"""Idempotent writes of message vectors."""

from __future__ import annotations

from collections.abc import Sequence

from chatbus_contracts.events import MessageCreated
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from .models import MessageEmbeddingRow


class EmbeddingStore:
    """Stores one row per message; a redelivered message is a no-op."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def save(
        self, events: Sequence[MessageCreated], vectors: Sequence[list[float]], model: str
    ) -> None:
        """Insert vectors for `events` (same order)."""
        rows = [
            {
                "message_id": event.message_id,
                "user_id": event.user_id,
                "conversation_id": event.conversation_id,
                "role": event.role,
                "model": model,
                "dimensions": len(vector),
                "embedding": vector,
                "created_at": event.created_at,
            }
            for event, vector in zip(events, vectors, strict=True)
        ]
        if not rows:
            return
        statement = insert(MessageEmbeddingRow).on_conflict_do_nothing(
            index_elements=["message_id"]
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement, rows)
