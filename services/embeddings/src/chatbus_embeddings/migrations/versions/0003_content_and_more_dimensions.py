"""message text kept with its vector (retrieval memory), HNSW indexes for common dimensions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "embeddings"
# 384 has its index since 0001. pgvector's HNSW takes up to 2,000 dimensions.
DIMENSIONS = (512, 768, 1024, 1536)


def upgrade() -> None:
    op.add_column("message_embeddings", sa.Column("content", sa.Text()), schema=SCHEMA)
    for dimensions in DIMENSIONS:
        op.execute(
            f"CREATE INDEX ix_message_embeddings_hnsw_{dimensions} "
            f"ON {SCHEMA}.message_embeddings USING hnsw "
            f"((embedding::vector({dimensions})) vector_cosine_ops) "
            f"WHERE dimensions = {dimensions}"
        )


def downgrade() -> None:
    for dimensions in DIMENSIONS:
        op.execute(f"DROP INDEX {SCHEMA}.ix_message_embeddings_hnsw_{dimensions}")
    op.drop_column("message_embeddings", "content", schema=SCHEMA)
