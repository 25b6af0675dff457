"""The `embeddings` schema: one vector per message; only this service touches it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pgvector.sqlalchemy import Vector
from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

SCHEMA = "embeddings"


class MessageEmbeddingRow(SQLModel, table=True):
    """A message's vector and text; model and dimension are stored with it.

    Each dimension has its own partial HNSW index, and a search compares only rows of
    the model it embeds the query with, so vectors of two models never mix.
    """

    __tablename__ = "message_embeddings"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    message_id: UUID = Field(unique=True)
    user_id: str = Field(index=True)
    conversation_id: UUID
    role: str
    model: str
    dimensions: int
    embedding: Any = Field(sa_column=Column(Vector(), nullable=False))
    content: str | None = None  # None for rows stored before migration 0003
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class DeletedConversationRow(SQLModel, table=True):
    """A deleted conversation: its vectors are dropped, and late messages never embedded."""

    __tablename__ = "deleted_conversations"
    __table_args__ = {"schema": SCHEMA}

    conversation_id: UUID = Field(primary_key=True)
    user_id: str
    deleted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
