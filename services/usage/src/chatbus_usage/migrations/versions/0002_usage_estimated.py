"""ledger: usage_estimated

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "usage"


def upgrade() -> None:
    op.add_column(
        "ledger",
        sa.Column("usage_estimated", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("ledger", "usage_estimated", schema=SCHEMA)
