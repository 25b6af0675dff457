"""Reads of conversations and messages; every query filters by the caller's user id."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any
from uuid import UUID

from chatbus_contracts.common import ChatSettings
from chatbus_contracts.conversations import Preferences
from chatbus_contracts.queries import ConversationDetail, ConversationPage, MessageView
from chatbus_runtime.database import autocommit
from sqlalchemy import BindParameter, and_, literal, or_
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from .models import ConversationRow, MessageRow
from .projection import preferences_of
from .views import conversation_view, message_view, settings_of

# A branch longer than this is a cycle someone published on purpose.
MAX_BRANCH_DEPTH = 100_000


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
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when, UUID(conversation_id)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidCursor(cursor) from error


def owned(  # type: ignore[no-untyped-def]
    user_id: str | BindParameter[Any], conversation_id: UUID | BindParameter[Any]
):
    """The filter of a live conversation that belongs to `user_id` (values or parameters)."""
    return and_(
        col(ConversationRow.id) == conversation_id,
        col(ConversationRow.user_id) == user_id,
        col(ConversationRow.deleted_at).is_(None),
    )


class ConversationStore:
    """Answers the read queries; deleted conversations are invisible to all of them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Reads need no transaction: under READ COMMITTED each statement has its own
        # snapshot either way, and BEGIN/ROLLBACK would be two more round trips.
        self._reads = autocommit(engine)

    def session(self) -> AsyncSession:
        """A session for writes whose objects stay readable after commit."""
        return AsyncSession(self._engine, expire_on_commit=False)

    def _read_session(self) -> AsyncSession:
        return AsyncSession(self._reads)

    async def list_conversations(
        self, user_id: str, limit: int, cursor: str | None
    ) -> ConversationPage:
        """One page of the user's conversations, newest first (`InvalidCursor` if bad)."""
        query = select(ConversationRow).where(
            col(ConversationRow.user_id) == user_id, col(ConversationRow.deleted_at).is_(None)
        )
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
            col(ConversationRow.created_at).desc(), col(ConversationRow.id).desc()
        ).limit(limit + 1)
        async with self._read_session() as session:
            rows = list((await session.scalars(query)).all())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return ConversationPage(items=[conversation_view(r) for r in rows], next_cursor=next_cursor)

    async def get_conversation(
        self, user_id: str, conversation_id: UUID, *, include_messages: bool
    ) -> ConversationDetail | None:
        """The conversation with all its messages (the whole tree), or None."""
        async with self._read_session() as session:
            row = await session.scalar(
                select(ConversationRow).where(owned(user_id, conversation_id))
            )
            if row is None:
                return None
            messages: list[MessageView] = []
            if include_messages:
                query = (
                    select(MessageRow)
                    .where(col(MessageRow.conversation_id) == conversation_id)
                    .order_by(col(MessageRow.created_at), col(MessageRow.role).desc())
                )
                messages = [message_view(m) for m in (await session.scalars(query)).all()]
        return ConversationDetail(**conversation_view(row).model_dump(), messages=messages)

    async def history(
        self,
        user_id: str,
        conversation_id: UUID,
        *,
        leaf_id: UUID | None,
        exclude_request_id: UUID | None,
    ) -> tuple[list[MessageView], ChatSettings, bool] | None:
        """The branch ending at `leaf_id` (or the active message), root first, the
        conversation's settings, and whether its title is still automatic.

        None when the conversation is not the user's live one or the leaf is not in it.
        """
        async with self._read_session() as session:
            row = await session.scalar(
                select(ConversationRow).where(owned(user_id, conversation_id))
            )
            if row is None:
                return None
            leaf = leaf_id or row.active_message_id
            branch = [] if leaf is None else await self._branch(session, conversation_id, leaf)
            if leaf_id is not None and not branch:
                return None
        if exclude_request_id is not None:
            branch = [m for m in branch if m.request_id != exclude_request_id]
        return branch, settings_of(row), row.title_source == "message"

    @staticmethod
    async def _branch(
        session: AsyncSession, conversation_id: UUID, leaf_id: UUID
    ) -> list[MessageView]:
        """The path root -> `leaf_id` through `parent_id`, by a recursive query."""
        start = (
            select(col(MessageRow.id), col(MessageRow.parent_id), literal(0).label("depth"))
            .where(
                col(MessageRow.id) == leaf_id, col(MessageRow.conversation_id) == conversation_id
            )
            .cte("branch", recursive=True)
        )
        parent = aliased(MessageRow)
        branch = start.union_all(
            select(parent.id, parent.parent_id, start.c.depth + 1).where(
                parent.id == start.c.parent_id,
                parent.conversation_id == conversation_id,
                start.c.depth < MAX_BRANCH_DEPTH,
            )
        )
        query = (
            select(MessageRow)
            .join(branch, col(MessageRow.id) == branch.c.id)
            .order_by(branch.c.depth.desc())
        )
        return [message_view(m) for m in (await session.scalars(query)).all()]

    async def message(self, user_id: str, message_id: UUID) -> MessageView | None:
        """One message of the user's live conversations, or None."""
        async with self._read_session() as session:
            row = await session.scalar(
                select(MessageRow)
                .join(ConversationRow, col(ConversationRow.id) == col(MessageRow.conversation_id))
                .where(
                    col(MessageRow.id) == message_id,
                    col(ConversationRow.user_id) == user_id,
                    col(ConversationRow.deleted_at).is_(None),
                )
            )
        return None if row is None else message_view(row)

    async def preferences(self, user_id: str) -> Preferences:
        """The user's preferences (all None until set).

        Asked on a new conversation's first turn, before its first token, when the
        `user_preferences` bucket had none: one query on a plain connection, no session.
        """
        async with self._reads.connect() as connection:
            return await preferences_of(connection, user_id)
