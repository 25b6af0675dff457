"""The body of every service's Alembic `env.py`.

Each service keeps its tables in its own schema, with its own version table there,
and takes a Postgres advisory lock so replicas starting together migrate once.
"""

from __future__ import annotations

import asyncio
import zlib

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def _migrate(connection: Connection, schema: str) -> None:
    lock_key = zlib.crc32(f"chatbus-migrations:{schema}".encode())
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key})
    try:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.commit()
        context.configure(
            connection=connection,
            version_table_schema=schema,
            include_schemas=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key})
        connection.commit()


async def _run_online(database_url: str, schema: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, schema)
    finally:
        await engine.dispose()


def run_env() -> None:
    """Run the migrations Alembic asked for, online, against `config.attributes`."""
    config = context.config
    database_url = config.attributes["database_url"]
    schema = config.attributes["schema"]
    asyncio.run(_run_online(database_url, schema))
