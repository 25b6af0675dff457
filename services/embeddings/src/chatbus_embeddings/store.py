"""Idempotent writes of message vectors, and their removal with a deleted conversation."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from chatbus_contracts.events import ConversationDeleted, MessageCreated
from sqlalchemy import delete, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col, select

from .models import DeletedConversationRow, MessageEmbeddingRow


class EmbeddingStore:
    """Stores one row per message; a redelivered message is a no-op."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def save(
        self, events: Sequence[MessageCreated], vectors: Sequence[list[float]], model: str
    ) -> None:
        """Insert vectors for `events` (same order), except those of deleted conversations."""
        rows = [
            {
                "message_id": event.message_id,
                "user_id": event.user_id,
                "conversation_id": event.conversation_id,
                "role": event.role,
                "model": model,
                "dimensions": len(vector),
                "embedding": vector,
                "content": event.content,
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
            await _lock_conversations(connection, {event.conversation_id for event in events})
            deleted = set(
                (
                    await connection.scalars(
                        select(col(DeletedConversationRow.conversation_id)).where(
                            col(DeletedConversationRow.conversation_id).in_(
                                {row["conversation_id"] for row in rows}
                            )
                        )
                    )
                ).all()
            )
            rows = [row for row in rows if row["conversation_id"] not in deleted]
            if rows:
                await connection.execute(statement, rows)

    async def drop_conversation(self, event: ConversationDeleted) -> None:
        """Remember the deletion and drop every vector of the conversation."""
        async with self._engine.begin() as connection:
            await _lock_conversations(connection, {event.conversation_id})
            await connection.execute(
                insert(DeletedConversationRow)
                .values(
                    conversation_id=event.conversation_id,
                    user_id=event.user_id,
                    deleted_at=event.deleted_at,
                )
                .on_conflict_do_nothing()
            )
            await connection.execute(
                delete(MessageEmbeddingRow).where(
                    col(MessageEmbeddingRow.conversation_id) == event.conversation_id,
                    col(MessageEmbeddingRow.user_id) == event.user_id,
                )
            )


async def _lock_conversations(connection: AsyncConnection, conversation_ids: set[UUID]) -> None:
    """Serialise saving and dropping vectors of the same conversations (until commit).

    Without it, a deletion committed between `save`'s tombstone check and its insert
    would leave that batch's vectors behind.
    """
    for conversation_id in sorted(conversation_ids):
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"embeddings:{conversation_id}"},
        )
