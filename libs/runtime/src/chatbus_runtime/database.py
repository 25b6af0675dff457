"""Postgres access: one async engine per service, Alembic migrations per service schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine; `pool_pre_ping` so a Postgres restart costs one retry, not a crash."""
    return create_async_engine(
        database_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def alembic_config(migrations_dir: Path, database_url: str, schema: str) -> Config:
    """An Alembic config for one service's migrations folder, owning one schema."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = schema
    return config


async def upgrade_schema(migrations_dir: Path, database_url: str, schema: str) -> None:
    """Apply every pending migration of one service (serialised across replicas)."""
    config = alembic_config(migrations_dir, database_url, schema)
    # Alembic's env runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(command.upgrade, config, "head")
