"""Applying events to the `conversation` schema, idempotently and in any order.

- `conversation.created` inserts (a duplicate changes nothing) with the event's settings:
  its publisher filled in the user's preferences.
- `message.created` inserts the message once and, in the same statement, counts it
  (messages, tokens, cost) and makes it the active message if it is the newest. The
  insert is guarded by the conversation being the user's, so the usual message is one
  statement (no BEGIN/COMMIT); only when nothing is inserted does it look why, in a
  transaction: a conversation not stored yet (the message came first) is created from
  the message, with the user's preferences as its settings, and the insert retried; a
  message stored already, or naming another user's conversation, is False.
- `conversation.updated` replaces title and settings if its `revision` is newer (the
  active message follows the messages; a branch switch by `PATCH` is written directly).
- `conversation.deleted` sets `deleted_at` once.

Everything runs as Core statements on a connection (no ORM session, no loaded rows);
the statements of the events above are built once, with named parameters.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from chatbus_contracts.common import ChatSettings, first_words
from chatbus_contracts.conversations import Preferences
from chatbus_contracts.events import (
    ConversationCreated,
    ConversationDeleted,
    ConversationUpdated,
    MessageCreated,
)
from chatbus_runtime.database import autocommit
from sqlalchemy import (
    DateTime,
    Uuid,
    bindparam,
    case,
    exists,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlmodel import col

from .models import ConversationRow, MessageRow, PreferencesRow

logger = logging.getLogger(__name__)

Database = AsyncSession | AsyncConnection
"""Where a statement runs: a service's session or a connection of its own."""

_PREFERENCES = select(
    col(PreferencesRow.default_model),
    col(PreferencesRow.default_system_prompt),
    col(PreferencesRow.default_memory),
).where(col(PreferencesRow.user_id) == bindparam("user_id"))

_MESSAGE_COLUMNS = inspect(MessageRow).columns

# Parameters of a message row: `m_` and its column name (a parameter named after a
# column of the conversation row would be taken for a SET value in `_STORE_MESSAGE`).
_M = "m_"

# One message row, if the conversation is the user's.
_INSERT_MESSAGE = (
    insert(MessageRow)
    .from_select(
        [column.name for column in _MESSAGE_COLUMNS],
        select(
            *(bindparam(_M + column.name, type_=column.type) for column in _MESSAGE_COLUMNS)
        ).where(
            exists().where(
                col(ConversationRow.id) == bindparam(_M + "conversation_id"),
                col(ConversationRow.user_id) == bindparam(_M + "user_id"),
            )
        ),
    )
    .on_conflict_do_nothing()
    .returning(col(MessageRow.id))
)

_OWNER = select(col(ConversationRow.user_id)).where(
    col(ConversationRow.id) == bindparam("conversation_id")
)

# The newest message is the active one (a branch or a regenerate switches to it).
_NEWEST = or_(
    col(ConversationRow.active_at).is_(None),
    col(ConversationRow.active_at) <= bindparam("message_at", type_=DateTime(timezone=True)),
)

# Count a message and make it the active one if it is the newest (SET sees the old row).
_COUNT_MESSAGE = (
    update(ConversationRow)
    .where(col(ConversationRow.id) == bindparam("conversation_id"))
    .values(
        message_count=col(ConversationRow.message_count) + 1,
        total_tokens=col(ConversationRow.total_tokens) + bindparam("added_tokens"),
        cost_usd=col(ConversationRow.cost_usd) + bindparam("added_cost"),
        updated_at=bindparam("message_at"),
        active_message_id=case(
            (_NEWEST, bindparam("message_id", type_=Uuid)),
            else_=col(ConversationRow.active_message_id),
        ),
        active_at=case(
            (_NEWEST, bindparam("message_at", type_=DateTime(timezone=True))),
            else_=col(ConversationRow.active_at),
        ),
    )
)

# Both in one statement, without a transaction: a row back means stored and counted.
_INSERTED = _INSERT_MESSAGE.cte("inserted")
_STORE_MESSAGE = (
    _COUNT_MESSAGE.where(exists(select(_INSERTED.c.id)))
    .add_cte(_INSERTED)
    .returning(col(ConversationRow.id))
)

_CONVERSATION_COLUMNS = inspect(ConversationRow).columns
_SETTINGS = tuple(ChatSettings.model_fields)


def _param(name: str, column: str | None = None) -> Any:
    """A named parameter typed as conversation column `column` (default: `name`)."""
    return bindparam(name, type_=_CONVERSATION_COLUMNS[column or name].type)


# A new conversation from parameters named as its columns (nothing if it exists).
_INSERT_CONVERSATION = (
    insert(ConversationRow)
    .values(
        {
            name: _param(name)
            for name in (
                "id",
                "user_id",
                "title",
                "title_source",
                "created_at",
                "updated_at",
                *_SETTINGS,
            )
        }
    )
    .on_conflict_do_nothing(index_elements=["id"])
)
# A conversation's title and settings, if `revision` is newer than the stored one
# (no parameter may be named as a column: those names are reserved for the SET clause).
_UPDATE_CONVERSATION = (
    update(ConversationRow)
    .where(
        col(ConversationRow.id) == bindparam("conversation_id"),
        col(ConversationRow.user_id) == bindparam("owner_id"),
        col(ConversationRow.revision) < _param("new_revision", "revision"),
    )
    .values(
        {
            name: _param(f"new_{name}", name)
            for name in ("revision", "title", "title_source", "updated_at", *_SETTINGS)
        }
    )
)


async def preferences_of(db: Database, user_id: str) -> Preferences:
    """The user's preferences (all None until set): one query."""
    row = (await db.execute(_PREFERENCES, {"user_id": user_id})).first()
    if row is None:
        return Preferences()
    return Preferences(
        default_model=row.default_model,
        default_system_prompt=row.default_system_prompt,
        default_memory=row.default_memory,
    )


def settings_columns(settings: ChatSettings) -> dict[str, Any]:
    """The row columns that hold a conversation's settings."""
    return settings.model_dump()


def message_columns(event: MessageCreated) -> dict[str, Any]:
    """The row of a message: every column of `conversation.messages`, by name."""
    usage = event.usage
    return {
        "id": event.message_id,
        "conversation_id": event.conversation_id,
        "user_id": event.user_id,
        "request_id": event.request_id,
        "role": event.role,
        # Postgres text cannot hold NUL; a provider that sends one must not turn the
        # event into one that can never be stored.
        "content": event.content.replace("\x00", "\ufffd"),
        "parent_id": event.parent_id,
        "created_at": event.created_at,
        "model": event.model,
        "provider": event.provider,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "cached_tokens": usage.cached_tokens if usage else None,
        "cache_write_tokens": usage.cache_write_tokens if usage else None,
        "cost_usd": event.cost_usd,
        "finish_reason": event.finish_reason,
        "latency_ms": event.latency_ms,
        "event_id": event.event_id,
        "context_message_ids": event.context_message_ids,
    }


def message_counts(event: MessageCreated) -> dict[str, Any]:
    """What a message adds to its conversation's counters and active message."""
    return {
        "conversation_id": event.conversation_id,
        "added_tokens": event.usage.total_tokens if event.usage else 0,
        "added_cost": event.cost_usd or Decimal(0),
        "message_at": event.created_at,
        "message_id": event.message_id,
    }


class Projection:
    """Writes the effects of events; every method is safe to run twice."""

    def __init__(self, engine: AsyncEngine, *, title_max_chars: int) -> None:
        self._engine = engine
        # For what needs no transaction: a lone statement, or an idempotent insert after
        # a read (no BEGIN/COMMIT round trips).
        self._autocommit = autocommit(engine)
        self._title_max_chars = title_max_chars

    async def insert_conversation(self, db: Database, event: ConversationCreated) -> None:
        """Insert a new conversation in `db`'s transaction (nothing if it exists)."""
        await self._insert_conversation(
            db,
            event.user_id,
            event.conversation_id,
            event.title,
            event.title_source,
            event.settings,
            event.created_at,
        )

    async def _insert_conversation(
        self,
        db: Database,
        user_id: str,
        conversation_id: UUID,
        title: str,
        title_source: str,
        settings: ChatSettings,
        created_at: datetime,
    ) -> None:
        await db.execute(
            _INSERT_CONVERSATION,
            {
                "id": conversation_id,
                "user_id": user_id,
                "title": title,
                "title_source": title_source,
                "created_at": created_at,
                "updated_at": created_at,
                **settings_columns(settings),
            },
        )

    async def conversation_created(self, event: ConversationCreated) -> None:
        """Store a new conversation; a redelivered event changes nothing."""
        async with self._autocommit.connect() as db:
            await self.insert_conversation(db, event)

    async def message_created(self, event: MessageCreated) -> bool:
        """Store a message and count it; False if it was already stored (or is foreign)."""
        row = message_columns(event)
        inserted = {_M + name: value for name, value in row.items()}
        counts = message_counts(event)
        async with self._autocommit.connect() as db:
            if await db.scalar(_STORE_MESSAGE, inserted | counts) is not None:
                return True
        # Nothing inserted: the message came before its conversation (events may be
        # handled out of order), is stored already, or names another user's conversation.
        async with self._engine.begin() as db:
            owner = await db.scalar(_OWNER, {"conversation_id": event.conversation_id})
            if owner is None:
                await self._insert_conversation(
                    db,
                    event.user_id,
                    event.conversation_id,
                    first_words(row["content"], self._title_max_chars),
                    "message",
                    (await preferences_of(db, event.user_id)).as_settings(),
                    event.created_at,
                )
            elif owner != event.user_id:
                logger.warning("message %s names another user's conversation", event.message_id)
                return False
            # The user's conversation is visible now: nothing stored means stored already.
            return await db.scalar(_STORE_MESSAGE, inserted | counts) is not None

    async def conversation_updated(self, event: ConversationUpdated) -> None:
        """Take the event's state if it is newer than the stored one."""
        state = {
            "revision": event.revision,
            "title": event.title,
            "title_source": event.title_source,
            "updated_at": event.updated_at,
            **settings_columns(event.settings),
        }
        async with self._autocommit.connect() as db:
            await db.execute(
                _UPDATE_CONVERSATION,
                {
                    "conversation_id": event.conversation_id,
                    "owner_id": event.user_id,
                    **{f"new_{name}": value for name, value in state.items()},
                },
            )

    async def conversation_deleted(self, event: ConversationDeleted) -> None:
        """Mark the conversation deleted (once)."""
        async with self._autocommit.connect() as db:
            await db.execute(
                update(ConversationRow)
                .where(
                    col(ConversationRow.id) == event.conversation_id,
                    col(ConversationRow.user_id) == event.user_id,
                    col(ConversationRow.deleted_at).is_(None),
                )
                .values(deleted_at=event.deleted_at)
            )
