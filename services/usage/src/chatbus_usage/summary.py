"""Usage aggregates: SQL sums over the ledger for a time window, optionally grouped.

Postgres sums `NUMERIC` exactly and hands back `Decimal`, so a total is the exact sum
of its rows. Days are UTC calendar days.
"""

from __future__ import annotations

from typing import Any

from chatbus_contracts.usage import (
    MAX_USAGE_GROUPS,
    UsageGroup,
    UsageGrouping,
    UsageQuery,
    UsageSummary,
    UsageTotals,
)
from sqlalchemy import ColumnElement, Row, Select, String, cast, func, nulls_last, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped
from sqlmodel import col

from .models import LedgerRow


def _totals_columns() -> list[ColumnElement[Any]]:
    cost = col(LedgerRow.cost_usd)
    prompt = func.coalesce(func.sum(col(LedgerRow.prompt_tokens)), 0)
    completion = func.coalesce(func.sum(col(LedgerRow.completion_tokens)), 0)
    return [
        func.count().label("calls"),
        prompt.label("prompt_tokens"),
        completion.label("completion_tokens"),
        func.coalesce(func.sum(col(LedgerRow.cached_tokens)), 0).label("cached_tokens"),
        func.coalesce(func.sum(col(LedgerRow.cache_write_tokens)), 0).label("cache_write_tokens"),
        (prompt + completion).label("total_tokens"),
        func.coalesce(func.sum(cost), 0).label("cost_usd"),
        func.count().filter(cost.is_(None)).label("unpriced_calls"),
        func.count().filter(col(LedgerRow.usage_estimated)).label("estimated_calls"),
    ]


def _group_key(group_by: UsageGrouping) -> ColumnElement[Any] | Mapped[str]:
    if group_by == "day":
        day = func.date(func.timezone("UTC", col(LedgerRow.occurred_at)))
        return func.to_char(day, "YYYY-MM-DD")
    if group_by == "model":
        return col(LedgerRow.model)
    if group_by == "conversation":
        return cast(col(LedgerRow.conversation_id), String)
    return col(LedgerRow.user_id)


def _totals(row: Row[Any]) -> UsageTotals:
    return UsageTotals(
        calls=row.calls,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cached_tokens=row.cached_tokens,
        cache_write_tokens=row.cache_write_tokens,
        total_tokens=row.total_tokens,
        cost_usd=row.cost_usd,
        unpriced_calls=row.unpriced_calls,
        estimated_calls=row.estimated_calls,
    )


def _in_window(statement: Select[Any], query: UsageQuery) -> Select[Any]:
    occurred_at = col(LedgerRow.occurred_at)
    statement = statement.where(occurred_at >= query.start, occurred_at < query.end)
    if query.user_id is not None:
        statement = statement.where(col(LedgerRow.user_id) == query.user_id)
    return statement


def _groups_statement(group_by: UsageGrouping, query: UsageQuery) -> Select[Any]:
    key = _group_key(group_by).label("key")
    statement = _in_window(select(key, *_totals_columns()), query).group_by(key)
    if group_by == "day":
        ordered = statement.order_by(key)
    else:
        cost = func.coalesce(func.sum(col(LedgerRow.cost_usd)), 0)
        ordered = statement.order_by(cost.desc(), nulls_last(key.asc()))
    # One more than listed, to tell whether any were cut off.
    return ordered.limit(MAX_USAGE_GROUPS + 1)


async def summarise_usage(engine: AsyncEngine, query: UsageQuery) -> UsageSummary:
    """The window's totals and, if `group_by` is set, its groups (sorted, at most 1000)."""
    groups: list[UsageGroup] = []
    async with engine.connect() as connection:
        # Both reads in one snapshot, so the groups always add up to the totals.
        await connection.execution_options(isolation_level="REPEATABLE READ")
        totals = (await connection.execute(_in_window(select(*_totals_columns()), query))).one()
        if query.group_by is not None:
            rows = await connection.execute(_groups_statement(query.group_by, query))
            groups = [UsageGroup(key=row.key, totals=_totals(row)) for row in rows]
    return UsageSummary(
        user_id=query.user_id,
        start=query.start,
        end=query.end,
        group_by=query.group_by,
        totals=_totals(totals),
        groups=groups[:MAX_USAGE_GROUPS],
        groups_truncated=len(groups) > MAX_USAGE_GROUPS,
    )
