"""Tables of the `conversation` schema; only this service reads or writes them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import Column, DateTime, Numeric, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlmodel import Field, SQLModel

SCHEMA = "conversation"


class ConversationRow(SQLModel, table=True):
    """A conversation owned by one user."""

    __tablename__ = "conversations"
    __table_args__ = {"schema": SCHEMA}

    id: UUID = Field(primary_key=True)
    user_id: str = Field(index=True)
    title: str
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    title_source: str = "message"
    system_prompt: str | None = None
    model: str | None = None
    provider: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    memory: bool | None = None
    revision: int = 0
    active_message_id: UUID | None = None
    active_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    message_count: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Field(default=Decimal(0), sa_column=Column(Numeric(20, 10)))
    deleted_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class MessageRow(SQLModel, table=True):
    """A user or assistant message; the primary key is the id fixed at acceptance.

    Messages form a tree by `parent_id`. The table also has a generated
    `search_vector` column (full-text search), used only in raw SQL.
    """

    __tablename__ = "messages"
    __table_args__ = {"schema": SCHEMA}

    id: UUID = Field(primary_key=True)
    conversation_id: UUID = Field(index=True)
    user_id: str
    request_id: UUID
    role: str
    content: str
    parent_id: UUID | None = None
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    model: str | None = None
    provider: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: Decimal | None = Field(default=None, sa_column=Column(Numeric(20, 10)))
    finish_reason: str | None = None
    latency_ms: int | None = None
    event_id: UUID = Field(unique=True)
    context_message_ids: list[UUID] = Field(
        default_factory=list,
        sa_column=Column(
            ARRAY(PG_UUID(as_uuid=True)), nullable=False, server_default=text("'{}'::uuid[]")
        ),
    )


class PreferencesRow(SQLModel, table=True):
    """One user's defaults for new conversations."""

    __tablename__ = "preferences"
    __table_args__ = {"schema": SCHEMA}

    user_id: str = Field(primary_key=True)
    default_model: str | None = None
    default_system_prompt: str | None = None
    default_memory: bool | None = None
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
