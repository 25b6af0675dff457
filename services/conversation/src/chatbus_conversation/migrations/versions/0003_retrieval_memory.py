"""retrieval memory: the per-conversation setting, the user's default, and the context
messages an answer was given

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "conversation"


def upgrade() -> None:
    op.add_column("conversations", sa.Column("memory", sa.Boolean(), nullable=True), schema=SCHEMA)
    op.add_column(
        "preferences", sa.Column("default_memory", sa.Boolean(), nullable=True), schema=SCHEMA
    )
    op.add_column(
        "messages",
        sa.Column(
            "context_message_ids",
            ARRAY(UUID(as_uuid=True)),
            nullable=False,
            server_default=sa.text("'{}'::uuid[]"),
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("messages", "context_message_ids", schema=SCHEMA)
    op.drop_column("preferences", "default_memory", schema=SCHEMA)
    op.drop_column("conversations", "memory", schema=SCHEMA)
