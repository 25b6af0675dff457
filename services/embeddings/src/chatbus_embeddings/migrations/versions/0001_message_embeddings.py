"""message embeddings

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "embeddings"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "message_embeddings",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("message_id", UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("conversation_id", UUID(as_uuid=True), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("embedding", Vector(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_message_embeddings_user",
        "message_embeddings",
        ["user_id", "conversation_id"],
        schema=SCHEMA,
    )
    # One HNSW index per dimension, on a cast, restricted to rows of that dimension.
    op.execute(
        f"CREATE INDEX ix_message_embeddings_hnsw_384 ON {SCHEMA}.message_embeddings "
        "USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE dimensions = 384"
    )


def downgrade() -> None:
    op.drop_table("message_embeddings", schema=SCHEMA)
