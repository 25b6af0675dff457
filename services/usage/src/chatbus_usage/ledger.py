"""Idempotent writes to the ledger."""

from __future__ import annotations

from typing import Any

from chatbus_contracts.events import UsageRecorded
from chatbus_runtime.database import autocommit
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from .models import LedgerRow

# Built once: each event only binds its values (the columns come from the parameters).
_INSERT = (
    insert(LedgerRow)
    .on_conflict_do_nothing(index_elements=["event_id"])
    .returning(col(LedgerRow.id))
)


class Ledger:
    """Appends `usage.recorded` events; a redelivered event is a no-op."""

    def __init__(self, engine: AsyncEngine) -> None:
        # One statement: it commits on its own (no BEGIN/COMMIT round trips).
        self._engine = autocommit(engine)

    async def record(self, event: UsageRecorded) -> bool:
        """Insert the row; False if this event was already recorded."""
        async with self._engine.connect() as connection:
            inserted = await connection.scalar(_INSERT, _row(event))
        return inserted is not None


def _row(event: UsageRecorded) -> dict[str, Any]:
    """The ledger row of `event`, by column name."""
    usage = event.usage
    return {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "request_id": event.request_id,
        "conversation_id": event.conversation_id,
        "message_id": event.message_id,
        "kind": event.kind,
        "status": event.status,
        "provider": event.provider,
        "model": event.model,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "usage_estimated": usage.estimated,
        "cost_usd": event.cost_usd,
        "price_source": event.price_source,
        "latency_ms": event.latency_ms,
        "finish_reason": event.finish_reason,
        "occurred_at": event.occurred_at,
    }
