"""Budgets over REST: the caller's month (`GET /v1/budget`) and admins setting budgets.

The gateway reads and writes the `budgets` bucket directly: a user's own budget
(`BudgetLimit`) and each month's spend and reservations (`BudgetState`). The role
defaults are `CHATBUS_BUDGETS`, read by inference and by the gateway alike.
"""

from __future__ import annotations

import time
from decimal import Decimal

from chatbus_contracts.budgets import (
    BudgetLimit,
    BudgetState,
    budget_limit_key,
    budget_state_key,
    month_of,
)
from chatbus_contracts.common import Model, Usd, utc_now
from fastapi import APIRouter
from nats.errors import Error as NatsError
from pydantic import Field

from .deps import CurrentAdmin, CurrentIdentity, State
from .errors import unavailable
from .state import GatewayState

router = APIRouter(tags=["usage"])


class BudgetView(Model):
    """A user's budget and where this month stands."""

    user_id: str
    month: str
    budget_usd: Usd | None = Field(description="None: unlimited.")
    source: str = Field(description="`user` (set by an admin), `role` or `none`.")
    spent_usd: Usd
    reserved_usd: Usd = Field(description="Held by turns still running.")
    remaining_usd: Usd | None


class NewBudget(Model):
    """`PUT /v1/admin/budgets/{user_id}`: the user's monthly budget; null = unlimited."""

    monthly_usd: Usd | None = Field(ge=0)


async def _view(state: GatewayState, user_id: str, role: str | None) -> BudgetView:
    month = month_of(utc_now())
    try:
        own = await state.budgets.value(budget_limit_key(user_id))
        month_value = await state.budgets.value(budget_state_key(user_id, month))
    except (NatsError, TimeoutError) as error:
        raise unavailable() from error
    if own is not None:
        budget, source = BudgetLimit.model_validate_json(own).monthly_usd, "user"
    else:
        budget = state.settings.budgets.get(role) if role else None
        source = "none" if budget is None else "role"
    month_state = BudgetState()
    if month_value is not None:
        month_state = BudgetState.model_validate_json(month_value)
    reserved = month_state.reserved_usd(time.time())
    remaining = None
    if budget is not None:
        remaining = max(Decimal(0), budget - month_state.spent_usd - reserved)
    return BudgetView(
        user_id=user_id,
        month=month,
        budget_usd=budget,
        source=source,
        spent_usd=month_state.spent_usd,
        reserved_usd=reserved,
        remaining_usd=remaining,
    )


@router.get("/v1/budget")
async def my_budget(identity: CurrentIdentity, state: State) -> BudgetView:
    """The caller's monthly budget, spend and reservations."""
    return await _view(state, identity.user_id, identity.role)


@router.get("/v1/admin/budgets/{user_id}")
async def user_budget(user_id: str, admin: CurrentAdmin, state: State) -> BudgetView:
    """A user's budget and month (the role default is not known here: only their own)."""
    return await _view(state, user_id, None)


@router.put("/v1/admin/budgets/{user_id}")
async def set_user_budget(
    user_id: str, body: NewBudget, admin: CurrentAdmin, state: State
) -> BudgetView:
    """Set a user's own monthly budget; it replaces their role's from the next turn."""
    limit = BudgetLimit(user_id=user_id, monthly_usd=body.monthly_usd)
    try:
        await (await state.budgets.kv()).put(
            budget_limit_key(user_id), limit.model_dump_json().encode()
        )
    except (NatsError, TimeoutError) as error:
        raise unavailable() from error
    return await _view(state, user_id, None)
