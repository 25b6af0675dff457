"""Applying events to the `conversation` schema, idempotently and in any order.

- `conversation.created` inserts (a duplicate changes nothing); unset settings take
  the user's preferences.
- `message.created` inserts the message once and, in the same transaction, counts it
  (messages, tokens, cost) and makes it the active message if it is the newest.
- `conversation.updated` replaces title and settings if its `revision` is newer (the
  active message follows the messages; a branch switch by `PATCH` is written directly).
- `conversation.deleted` sets `deleted_at` once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from chatbus_contracts.common import ChatSettings, first_words
from chatbus_contracts.events import (
    ConversationCreated,
    ConversationDeleted,
    ConversationUpdated,
    MessageCreated,
)
from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

from .models import ConversationRow, MessageRow, PreferencesRow

logger = logging.getLogger(__name__)


def preferred_settings(prefs: PreferencesRow | None) -> ChatSettings:
    """The settings a user's preferences give a conversation that sets none itself."""
    if prefs is None:
        return ChatSettings()
    return ChatSettings(
        model=prefs.default_model,
        system_prompt=prefs.default_system_prompt,
        memory=prefs.default_memory,
    )


def filled(settings: ChatSettings, preferred: ChatSettings) -> ChatSettings:
    """`settings` with the preferred model, system prompt and memory where it sets none."""
    return settings.model_copy(
        update={
            "model": settings.model or preferred.model,
            "system_prompt": settings.system_prompt or preferred.system_prompt,
            # A conversation's own `False` turns memory off whatever the default.
            "memory": preferred.memory if settings.memory is None else settings.memory,
        }
    )


async def with_preferences(
    session: AsyncSession, user_id: str, settings: ChatSettings
) -> ChatSettings:
    """`settings` with the user's preferences filled in where it sets none."""
    return filled(settings, preferred_settings(await session.get(PreferencesRow, user_id)))


def settings_columns(settings: ChatSettings) -> dict[str, Any]:
    """The row columns that hold a conversation's settings."""
    return settings.model_dump()


class Projection:
    """Writes the effects of events; every method is safe to run twice."""

    def __init__(self, engine: AsyncEngine, *, title_max_chars: int) -> None:
        self._engine = engine
        self._title_max_chars = title_max_chars

    def _session(self) -> AsyncSession:
        return AsyncSession(self._engine, expire_on_commit=False)

    async def insert_conversation(self, session: AsyncSession, event: ConversationCreated) -> None:
        """Insert a new conversation in `session` (nothing if it exists)."""
        await self._insert_conversation(
            session,
            event.user_id,
            event.conversation_id,
            event.title,
            event.title_source,
            event.settings,
            event.created_at,
        )

    async def _insert_conversation(
        self,
        session: AsyncSession,
        user_id: str,
        conversation_id: UUID,
        title: str,
        title_source: str,
        settings: ChatSettings,
        created_at: datetime,
    ) -> None:
        settings = await with_preferences(session, user_id, settings)
        await session.execute(
            insert(ConversationRow)
            .values(
                id=conversation_id,
                user_id=user_id,
                title=title,
                title_source=title_source,
                created_at=created_at,
                updated_at=created_at,
                **settings_columns(settings),
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )

    async def conversation_created(self, event: ConversationCreated) -> None:
        """Store a new conversation; a redelivered event changes nothing."""
        async with self._session() as session, session.begin():
            await self.insert_conversation(session, event)

    async def message_created(self, event: MessageCreated) -> bool:
        """Store a message and count it; False if it was already stored (or is foreign)."""
        async with self._session() as session, session.begin():
            # Events may be handled out of order, so the message can arrive first.
            await self._insert_conversation(
                session,
                event.user_id,
                event.conversation_id,
                first_words(event.content, self._title_max_chars),
                "message",
                ChatSettings(),
                event.created_at,
            )
            owner = await session.scalar(
                select(col(ConversationRow.user_id)).where(
                    col(ConversationRow.id) == event.conversation_id
                )
            )
            if owner != event.user_id:
                logger.warning("message %s names another user's conversation", event.message_id)
                return False
            if not await self._insert_message(session, event):
                return False
            await self._count(session, event)
            return True

    @staticmethod
    async def _insert_message(session: AsyncSession, event: MessageCreated) -> bool:
        usage = event.usage
        inserted = await session.scalar(
            insert(MessageRow)
            .values(
                id=event.message_id,
                conversation_id=event.conversation_id,
                user_id=event.user_id,
                request_id=event.request_id,
                role=event.role,
                # Postgres text cannot hold NUL; a provider that sends one must not
                # turn the event into one that can never be stored.
                content=event.content.replace("\x00", "\ufffd"),
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
                context_message_ids=event.context_message_ids,
            )
            .on_conflict_do_nothing()
            .returning(col(MessageRow.id))
        )
        return inserted is not None

    @staticmethod
    async def _count(session: AsyncSession, event: MessageCreated) -> None:
        conversation = col(ConversationRow.id) == event.conversation_id
        tokens = event.usage.total_tokens if event.usage else 0
        await session.execute(
            update(ConversationRow)
            .where(conversation)
            .values(
                message_count=col(ConversationRow.message_count) + 1,
                total_tokens=col(ConversationRow.total_tokens) + tokens,
                cost_usd=col(ConversationRow.cost_usd) + (event.cost_usd or Decimal(0)),
                updated_at=event.created_at,
            )
        )
        # The newest message is the active one (a branch or a regenerate switches to it).
        await session.execute(
            update(ConversationRow)
            .where(
                conversation,
                or_(
                    col(ConversationRow.active_at).is_(None),
                    col(ConversationRow.active_at) <= event.created_at,
                ),
            )
            .values(active_message_id=event.message_id, active_at=event.created_at)
        )

    async def conversation_updated(self, event: ConversationUpdated) -> None:
        """Take the event's state if it is newer than the stored one."""
        async with self._session() as session, session.begin():
            await session.execute(
                update(ConversationRow)
                .where(
                    col(ConversationRow.id) == event.conversation_id,
                    col(ConversationRow.user_id) == event.user_id,
                    col(ConversationRow.revision) < event.revision,
                )
                .values(
                    revision=event.revision,
                    title=event.title,
                    title_source=event.title_source,
                    updated_at=event.updated_at,
                    **settings_columns(event.settings),
                )
            )

    async def conversation_deleted(self, event: ConversationDeleted) -> None:
        """Mark the conversation deleted (once)."""
        async with self._session() as session, session.begin():
            await session.execute(
                update(ConversationRow)
                .where(
                    col(ConversationRow.id) == event.conversation_id,
                    col(ConversationRow.user_id) == event.user_id,
                    col(ConversationRow.deleted_at).is_(None),
                )
                .values(deleted_at=event.deleted_at)
            )
