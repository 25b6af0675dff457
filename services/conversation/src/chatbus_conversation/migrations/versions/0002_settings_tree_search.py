"""conversation settings, counters, soft delete, message tree, full-text search, preferences

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "conversation"


def upgrade() -> None:
    columns: list[sa.Column[Any]] = [
        sa.Column("title_source", sa.Text(), nullable=False, server_default="message"),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("temperature", sa.Float(), nullable=True),
        sa.Column("max_tokens", sa.Integer(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("active_message_id", UUID(as_uuid=True), nullable=True),
        sa.Column("active_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Numeric(20, 10), nullable=False, server_default="0"),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    ]
    for column in columns:
        op.add_column("conversations", column, schema=SCHEMA)
    op.add_column(
        "messages",
        sa.Column(
            "search_vector",
            TSVECTOR(),
            sa.Computed("to_tsvector('english', content)", persisted=True),
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_messages_search",
        "messages",
        ["search_vector"],
        schema=SCHEMA,
        postgresql_using="gin",
    )
    op.create_index("ix_messages_user", "messages", ["user_id"], schema=SCHEMA)
    # Conversations stored before this revision: the newest message is the active one,
    # and the counters are the sums of their messages.
    op.execute(
        f"""
        UPDATE {SCHEMA}.conversations AS c
        SET active_message_id = newest.id, active_at = newest.created_at
        FROM (
            SELECT DISTINCT ON (conversation_id) conversation_id, id, created_at
            FROM {SCHEMA}.messages
            ORDER BY conversation_id, created_at DESC, role
        ) AS newest
        WHERE newest.conversation_id = c.id
        """
    )
    op.execute(
        f"""
        UPDATE {SCHEMA}.conversations AS c
        SET total_tokens = sums.tokens, cost_usd = sums.cost
        FROM (
            SELECT conversation_id,
                   coalesce(sum(prompt_tokens + completion_tokens), 0) AS tokens,
                   coalesce(sum(cost_usd), 0) AS cost
            FROM {SCHEMA}.messages GROUP BY conversation_id
        ) AS sums
        WHERE sums.conversation_id = c.id
        """
    )
    op.create_table(
        "preferences",
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("default_model", sa.Text(), nullable=True),
        sa.Column("default_system_prompt", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("preferences", schema=SCHEMA)
    op.drop_index("ix_messages_user", table_name="messages", schema=SCHEMA)
    op.drop_index("ix_messages_search", table_name="messages", schema=SCHEMA)
    op.drop_column("messages", "search_vector", schema=SCHEMA)
    for name in (
        "deleted_at",
        "cost_usd",
        "total_tokens",
        "active_at",
        "active_message_id",
        "revision",
        "max_tokens",
        "temperature",
        "provider",
        "model",
        "system_prompt",
        "title_source",
    ):
        op.drop_column("conversations", name, schema=SCHEMA)
