"""The `usage` schema: the token and cost ledger; only this service touches it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import Column, DateTime, Numeric
from sqlmodel import Field, SQLModel

SCHEMA = "usage"


class LedgerRow(SQLModel, table=True):
    """One billed provider call; `event_id` is unique, so a redelivery never bills twice."""

    __tablename__ = "ledger"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    event_id: UUID = Field(unique=True)
    user_id: str = Field(index=True)
    request_id: UUID
    conversation_id: UUID | None = None
    message_id: UUID | None = None
    kind: str
    status: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    usage_estimated: bool = False
    cost_usd: Decimal | None = Field(default=None, sa_column=Column(Numeric(20, 10)))
    price_source: str | None = None
    latency_ms: int | None = None
    finish_reason: str | None = None
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
