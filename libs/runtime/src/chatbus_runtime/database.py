"""Postgres access: one async engine per service, Alembic migrations per service schema."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, Pool

# A pooled connection idle this long is pinged before use (see `_ping_when_idle`).
IDLE_PING_SECONDS = 1.0


def create_engine(database_url: str, *, pool_size: int = 20) -> AsyncEngine:
    """An asyncpg engine whose pooled connections are checked when they were idle.

    `pool_size` covers a service's usual concurrency (a fetch of 16 events plus a few
    queries): a connection beyond it is opened and closed again, which costs Postgres a
    backend process and the client a TLS attempt and type introspection each time.
    """
    engine = create_async_engine(database_url, pool_size=pool_size, max_overflow=pool_size // 2)
    _ping_when_idle(engine.sync_engine.pool)
    return engine


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool without BEGIN/COMMIT: one round trip for a lone statement or a read."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _ping_when_idle(pool: Pool) -> None:
    """Ping a connection at checkout only if it sat in the pool `IDLE_PING_SECONDS`.

    SQLAlchemy's `pool_pre_ping` pings at every checkout, and asyncpg's ping is three
    round trips (BEGIN, `;`, ROLLBACK): most of what a one-row write costs. A connection
    that was used a moment ago cannot have outlived a Postgres restart unnoticed unless
    the restart took under a second; then its first use fails and the pool is
    invalidated: a consumer's retry (`chatbus_runtime.outages`) gets a fresh
    connection, a query answers with an error once.
    """

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return  # fresh, or used a moment ago
        try:
            dbapi_connection.ping()
        except Exception as error:
            # Postgres went away: replace every pooled connection, then retry checkout.
            raise exc.InvalidatePoolError(str(error)) from error


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
