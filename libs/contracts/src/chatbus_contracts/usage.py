"""Usage aggregates over the ledger, answered by the usage service over core request/reply.

`UsageQuery` asks for the sums of the billed calls in a half-open time window
`[start, end)`, optionally split into groups. Like every query, `user_id` comes from
the caller's verified token; only the gateway's admin route may send None (every user).
Amounts are exact sums of the ledger's rows: `Decimal` throughout, never a float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Self

from pydantic import AwareDatetime, Field, model_validator

from .common import Model, Usd

UsageGrouping = Literal["day", "model", "conversation", "user"]

# More groups than this are cut off (the totals still count every call): a reply must
# fit in one NATS message.
MAX_USAGE_GROUPS = 1000


class UsageQuery(Model):
    """Sums of the calls that occurred in `[start, end)`, for one user or (None) for all."""

    user_id: str | None
    start: AwareDatetime
    end: AwareDatetime
    group_by: UsageGrouping | None = None

    @model_validator(mode="after")
    def _window_is_not_empty(self) -> Self:
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class UsageTotals(Model):
    """Sums over a set of billed calls.

    `cost_usd` adds up the priced calls only; `unpriced_calls` counts the calls whose
    model is missing from the price table, so a reader knows the cost is a lower bound.
    """

    calls: int = Field(default=0, ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cached_tokens: int = Field(default=0, ge=0, description="Prompt tokens read from cache.")
    cache_write_tokens: int = Field(default=0, ge=0, description="Prompt tokens written to cache.")
    total_tokens: int = Field(default=0, ge=0, description="Prompt plus completion tokens.")
    cost_usd: Usd = Decimal(0)
    unpriced_calls: int = Field(
        default=0, ge=0, description="Calls without a price (not in `cost_usd`)."
    )
    estimated_calls: int = Field(
        default=0, ge=0, description="Calls whose token counts chatbus estimated."
    )


class UsageGroup(Model):
    """The totals of one group.

    `key` is a UTC date (`2025-06-01`), a model name, a conversation id or a user id;
    None gathers the calls without one (e.g. calls of no conversation).
    """

    key: str | None
    totals: UsageTotals


class UsageSummary(Model):
    """Reply to `UsageQuery`: the window's totals, and its groups when asked.

    Groups come day ascending, or else by cost (highest first), then key.
    `groups_truncated` says that only the first `MAX_USAGE_GROUPS` groups are listed.
    """

    user_id: str | None
    start: AwareDatetime
    end: AwareDatetime
    group_by: UsageGrouping | None
    totals: UsageTotals
    groups: list[UsageGroup]
    groups_truncated: bool = False
