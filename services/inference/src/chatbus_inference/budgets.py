"""Monthly budgets: reserve a turn's worst-case cost before it streams, or refuse it.

The state of a user's month is one entry in the `budgets` bucket (see
`chatbus_contracts.budgets`), changed by compare-and-set, so concurrent turns on any
number of replicas cannot together overspend. The usage service settles each billed
call; this module only reserves, and releases the reservation of a turn that ends
without anything to bill.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from chatbus_contracts import subjects
from chatbus_contracts.budgets import (
    BudgetLimit,
    BudgetState,
    Reservation,
    budget_limit_key,
    budget_state_key,
    month_of,
)
from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.common import TokenUsage, derived_id, format_usd
from chatbus_contracts.errors import ErrorCode
from chatbus_contracts.events import BudgetExceeded
from chatbus_contracts.streams import BUDGETS
from chatbus_runtime.bus import Bucket, publish_event
from chatbus_runtime.kvcas import compare_and_set
from chatbus_runtime.pricing import price_call
from faststream.nats import NatsBroker

from .prompt import estimate_tokens
from .providers.base import PromptMessage, ProviderError
from .routing import Route

logger = logging.getLogger(__name__)


def worst_case_cost(prompt: list[PromptMessage], max_tokens: int, route: Route) -> Decimal | None:
    """The most a call can cost: the whole prompt, and `max_tokens` of answer."""
    usage = TokenUsage(
        prompt_tokens=sum(estimate_tokens(message.content) for message in prompt),
        completion_tokens=max_tokens,
    )
    return price_call(usage, route.model, route.provider.name)[0]


class BudgetBook:
    """Reservations against each user's monthly budget (theirs, else their role's)."""

    def __init__(
        self,
        broker: NatsBroker,
        role_budgets: dict[str, Decimal],
        *,
        reservation_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._broker = broker
        self._role_budgets = role_budgets
        self._reservation_seconds = reservation_seconds
        self._clock = clock
        self._bucket = Bucket(broker, BUDGETS)

    async def budget_of(self, user_id: str, role: str) -> Decimal | None:
        """The user's monthly budget: their own if an admin set one, else their role's."""
        value = await self._bucket.value(budget_limit_key(user_id))
        if value is None:
            return self._role_budgets.get(role)
        return BudgetLimit.model_validate_json(value).monthly_usd

    async def reserve(
        self, request: GenerateReply, amount: Decimal | None, budget: Decimal | None
    ) -> bool:
        """Hold `amount` for the turn (replacing an earlier hold of the same turn).

        `budget` is the user's (`budget_of`, looked up once per turn). True if a hold was
        written; False when the user has no budget.

        Raises `ProviderError` `budget_exceeded` (and publishes `usage.budget_exceeded`)
        when it does not fit. A model without a price reserves nothing.
        """
        if budget is None:
            return False
        needed, turn = amount or Decimal(0), str(request.request_id)
        month = month_of(datetime.fromtimestamp(self._clock(), UTC))

        def hold(current: bytes | None) -> tuple[bytes | None, BudgetState | None]:
            now = self._clock()
            state = BudgetState.model_validate_json(current) if current else BudgetState()
            others = {k: r for k, r in state.live_reservations(now).items() if k != turn}
            held = BudgetState(spent_usd=state.spent_usd, reservations=others)
            if held.spent_usd + held.reserved_usd(now) + needed > budget:
                return None, held
            expires_at = now + self._reservation_seconds
            reservation = Reservation(amount_usd=needed, expires_at=expires_at)
            updated = held.model_copy(update={"reservations": others | {turn: reservation}})
            return updated.model_dump_json().encode(), None

        key = budget_state_key(request.user_id, month)
        refused = await compare_and_set(await self._bucket.kv(), key, hold)
        if refused is not None:
            await self._refuse(request, month, budget, refused, needed)
        return True

    async def release(self, request: GenerateReply) -> None:
        """Drop the turn's reservation (it ended with nothing billed)."""
        turn = str(request.request_id)
        month = month_of(datetime.fromtimestamp(self._clock(), UTC))

        def drop(current: bytes | None) -> tuple[bytes | None, None]:
            state = BudgetState.model_validate_json(current) if current else BudgetState()
            if turn not in state.reservations:
                return None, None
            return state.settled(turn, Decimal(0)).model_dump_json().encode(), None

        await compare_and_set(
            await self._bucket.kv(), budget_state_key(request.user_id, month), drop
        )

    async def _refuse(
        self,
        request: GenerateReply,
        month: str,
        budget: Decimal,
        state: BudgetState,
        needed: Decimal,
    ) -> None:
        reserved = state.reserved_usd(self._clock())
        await publish_event(
            self._broker,
            BudgetExceeded(
                event_id=derived_id(request.request_id, subjects.USAGE_BUDGET_EXCEEDED),
                user_id=request.user_id,
                request_id=request.request_id,
                month=month,
                budget_usd=budget,
                spent_usd=state.spent_usd,
                reserved_usd=reserved,
                needed_usd=needed,
            ),
        )
        raise ProviderError(
            ErrorCode.BUDGET_EXCEEDED,
            f"this turn may cost up to ${format_usd(needed)}; ${format_usd(state.spent_usd)} "
            f"of the ${format_usd(budget)} budget for {month} is spent"
            + (f" and ${format_usd(reserved)} is held by running turns" if reserved else ""),
        )
