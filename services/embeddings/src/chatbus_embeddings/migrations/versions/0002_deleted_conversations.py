"""deleted conversations (tombstones) and an index to drop a conversation's vectors

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "embeddings"


def upgrade() -> None:
    op.create_table(
        "deleted_conversations",
        sa.Column("conversation_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_message_embeddings_conversation",
        "message_embeddings",
        ["conversation_id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_message_embeddings_conversation", table_name="message_embeddings", schema=SCHEMA
    )
    op.drop_table("deleted_conversations", schema=SCHEMA)
