"""Reads and idempotent writes of conversations and messages."""

from __future__ import annotations

import base64
import logging
from datetime import datetime
from uuid import UUID

from chatbus_contracts.common import TokenUsage
from chatbus_contracts.events import ConversationCreated, MessageCreated
from chatbus_contracts.queries import (
    ConversationDetail,
    ConversationPage,
    ConversationView,
    MessageView,
)
from sqlalchemy import and_, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

from .models import ConversationRow, MessageRow

logger = logging.getLogger(__name__)


class InvalidCursor(ValueError):
    """A pagination cursor that this service did not issue."""


def encode_cursor(created_at: datetime, conversation_id: UUID) -> str:
    """An opaque cursor pointing just after one conversation in newest-first order."""
    raw = f"{created_at.isoformat()}|{conversation_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The position a cursor points at; `InvalidCursor` when it is not one of ours."""
    try:
        created_at, conversation_id = base64.urlsafe_b64decode(cursor).decode().split("|")
        return datetime.fromisoformat(created_at), UUID(conversation_id)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidCursor(cursor) from error


def _title_from(content: str, max_chars: int) -> str:
    line = " ".join(content.split())
    return line if len(line) <= max_chars else line[: max_chars - 1].rstrip() + "…"


def _message_view(row: MessageRow) -> MessageView:
    usage = None
    if row.prompt_tokens is not None and row.completion_tokens is not None:
        usage = TokenUsage(
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            cached_tokens=row.cached_tokens or 0,
            cache_write_tokens=row.cache_write_tokens or 0,
        )
    return MessageView(
        id=row.id,
        conversation_id=row.conversation_id,
        request_id=row.request_id,
        role=row.role,
        content=row.content,
        parent_id=row.parent_id,
        created_at=row.created_at,
        model=row.model,
        provider=row.provider,
        usage=usage,
        cost_usd=row.cost_usd,
        finish_reason=row.finish_reason,
    )


def _conversation_view(row: ConversationRow) -> ConversationView:
    return ConversationView(
        id=row.id,
        title=row.title,
        created_at=row.created_at,
        updated_at=row.updated_at,
        message_count=row.message_count,
    )


class ConversationStore:
    """The only code that touches the `conversation` schema."""

    def __init__(self, engine: AsyncEngine, *, title_max_chars: int = 60) -> None:
        self._engine = engine
        self._title_max_chars = title_max_chars

    def _session(self) -> AsyncSession:
        return AsyncSession(self._engine, expire_on_commit=False)

    async def apply_conversation_created(self, event: ConversationCreated) -> None:
        """Store a new conversation; a redelivered event changes nothing."""
        async with self._session() as session, session.begin():
            await session.execute(
                insert(ConversationRow)
                .values(
                    id=event.conversation_id,
                    user_id=event.user_id,
                    title=event.title,
                    created_at=event.created_at,
                    updated_at=event.created_at,
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )

    async def apply_message_created(self, event: MessageCreated) -> bool:
        """Store a message and count it on its conversation; False if it was already stored."""
        async with self._session() as session, session.begin():
            # Events may be handled out of order, so the message can arrive first.
            await session.execute(
                insert(ConversationRow)
                .values(
                    id=event.conversation_id,
                    user_id=event.user_id,
                    title=_title_from(event.content, self._title_max_chars),
                    created_at=event.created_at,
                    updated_at=event.created_at,
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )
            owner = await session.scalar(
                select(col(ConversationRow.user_id)).where(
                    col(ConversationRow.id) == event.conversation_id
                )
            )
            if owner != event.user_id:
                logger.warning("message %s names another user's conversation", event.message_id)
                return False
            usage = event.usage
            inserted = await session.scalar(
                insert(MessageRow)
                .values(
                    id=event.message_id,
                    conversation_id=event.conversation_id,
                    user_id=event.user_id,
                    request_id=event.request_id,
                    role=event.role,
                    content=event.content,
                    parent_id=event.parent_id,
                    created_at=event.created_at,
                    model=event.model,
                    provider=event.provider,
                    prompt_tokens=usage.prompt_tokens if usage else None,
                    completion_tokens=usage.completion_tokens if usage else None,
                    cached_tokens=usage.cached_tokens if usage else None,
                    cache_write_tokens=usage.cache_write_tokens if usage else None,
                    cost_usd=event.cost_usd,
                    finish_reason=event.finish_reason,
                    latency_ms=event.latency_ms,
                    event_id=event.event_id,
                )
                .on_conflict_do_nothing()
                .returning(col(MessageRow.id))
            )
            if inserted is None:
                return False
            await session.execute(
                update(ConversationRow)
                .where(col(ConversationRow.id) == event.conversation_id)
                .values(
                    message_count=col(ConversationRow.message_count) + 1,
                    updated_at=event.created_at,
                )
            )
            return True

    async def list_conversations(
        self, user_id: str, limit: int, cursor: str | None
    ) -> ConversationPage:
        """One page of the user's conversations, newest first."""
        query = select(ConversationRow).where(col(ConversationRow.user_id) == user_id)
        if cursor is not None:
            created_at, conversation_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    col(ConversationRow.created_at) < created_at,
                    and_(
                        col(ConversationRow.created_at) == created_at,
                        col(ConversationRow.id) < conversation_id,
                    ),
                )
            )
        query = query.order_by(
            col(ConversationRow.created_at).desc(),
            col(ConversationRow.id).desc(),
        ).limit(limit + 1)
        async with self._session() as session:
            rows = list((await session.scalars(query)).all())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return ConversationPage(
            items=[_conversation_view(r) for r in rows], next_cursor=next_cursor
        )

    async def get_conversation(
        self, user_id: str, conversation_id: UUID, *, include_messages: bool
    ) -> ConversationDetail | None:
        """The conversation if it exists and belongs to `user_id`, else None."""
        async with self._session() as session:
            row = await session.scalar(
                select(ConversationRow).where(
                    col(ConversationRow.id) == conversation_id,
                    col(ConversationRow.user_id) == user_id,
                )
            )
            if row is None:
                return None
            messages: list[MessageView] = []
            if include_messages:
                messages = await self._messages(session, conversation_id, exclude_request_id=None)
        return ConversationDetail(**_conversation_view(row).model_dump(), messages=messages)

    async def history(
        self, user_id: str, conversation_id: UUID, exclude_request_id: UUID | None
    ) -> list[MessageView] | None:
        """The messages a new turn builds on, oldest first; None for a missing or foreign id."""
        async with self._session() as session:
            owner = await session.scalar(
                select(col(ConversationRow.user_id)).where(
                    col(ConversationRow.id) == conversation_id
                )
            )
            if owner != user_id:
                return None
            return await self._messages(session, conversation_id, exclude_request_id)

    @staticmethod
    async def _messages(
        session: AsyncSession, conversation_id: UUID, exclude_request_id: UUID | None
    ) -> list[MessageView]:
        query = select(MessageRow).where(col(MessageRow.conversation_id) == conversation_id)
        if exclude_request_id is not None:
            query = query.where(col(MessageRow.request_id) != exclude_request_id)
        query = query.order_by(col(MessageRow.created_at), col(MessageRow.role).desc())
        rows = (await session.scalars(query)).all()
        return [_message_view(row) for row in rows]
