"""Tables of the `conversation` schema; only this service reads or writes them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import Column, DateTime, Numeric
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
    message_count: int = 0


class MessageRow(SQLModel, table=True):
    """A user or assistant message; the primary key is the id fixed at acceptance."""

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
