"""Running tallies other services enforce limits by, kept in NATS key-value buckets.

For every newly billed call (a new ledger row; a redelivered event makes none, so
nothing is counted twice):

- its tokens (prompt + completion) go to the user's counter of that UTC day in
  `rate_limits`, which the gateways' rate limiter reads;
- its cost goes to the user's month in `budgets`, and the turn's reservation made by
  inference is removed in the same compare-and-set (see `chatbus_contracts.budgets`).

A crash between the ledger commit and these updates undercounts that one call; the
ledger itself stays exact. Usage is most often the only writer of these entries (inference
writes a budget state only to reserve for a user with a budget), so each is updated on
the revision this replica last wrote (`RevisionCache`), without reading it first; a
write refused because another replica or inference changed it reads and tries again.
"""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

from chatbus_contracts.budgets import BudgetState, budget_state_key, month_of
from chatbus_contracts.events import UsageRecorded
from chatbus_contracts.limits import tokens_day_key
from chatbus_contracts.streams import BUDGETS, RATE_LIMITS
from chatbus_runtime.bus import Bucket
from chatbus_runtime.kvcas import RevisionCache, add_to_counter, compare_and_set
from faststream.nats import NatsBroker


class Tallies:
    """Adds billed calls to the per-day token counters and the per-month budget states."""

    def __init__(self, broker: NatsBroker) -> None:
        self._rate_limits = Bucket(broker, RATE_LIMITS)
        self._budgets = Bucket(broker, BUDGETS)
        self._counters = RevisionCache()
        self._budget_states = RevisionCache()

    async def add(self, event: UsageRecorded) -> None:
        """Count one newly billed call."""
        occurred = event.occurred_at.astimezone(UTC)
        tokens = event.usage.prompt_tokens + event.usage.completion_tokens
        if tokens:
            key = tokens_day_key(event.user_id, occurred.date())
            kv = await self._rate_limits.kv()
            await add_to_counter(kv, key, tokens, cache=self._counters)
        await self._settle(event, month_of(occurred))

    async def _settle(self, event: UsageRecorded, month: str) -> None:
        turn = str(event.request_id) if event.kind == "chat" else None
        cost = event.cost_usd or Decimal(0)

        def settle(current: bytes | None) -> tuple[bytes | None, None]:
            state = BudgetState.model_validate_json(current) if current else BudgetState()
            if not cost and turn not in state.reservations:
                return None, None
            return state.settled(turn, cost).model_dump_json().encode(), None

        key = budget_state_key(event.user_id, month)
        await compare_and_set(await self._budgets.kv(), key, settle, cache=self._budget_states)
