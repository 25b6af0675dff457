"""Monthly USD budgets: the state each user's month keeps in the `budgets` bucket.

One entry per user and UTC month holds what was spent and what running turns have
reserved, so one compare-and-set decides a reservation against both:

- inference reserves a turn's worst-case cost before it streams, and refuses the turn
  with `budget_exceeded` when spent + reserved + worst case is over the budget;
- the usage service settles each newly billed call: adds its real cost and removes the
  turn's reservation (a redelivered event makes no new ledger row, so nothing twice);
- a reservation whose turn crashed expires at `expires_at`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import Field

from .common import Model, Usd, user_key


def month_of(moment: datetime) -> str:
    """`YYYY-MM` of a moment (UTC)."""
    return f"{moment:%Y-%m}"


def budget_state_key(user_id: str, month: str) -> str:
    """The `BudgetState` of a user's month."""
    return f"state.{month.replace('-', '')}.{user_key(user_id)}"


def budget_limit_key(user_id: str) -> str:
    """A user's own monthly budget (`BudgetLimit`), set by an admin; else their role's."""
    return f"limit.{user_key(user_id)}"


class Reservation(Model):
    """A running turn's worst-case cost, held until it is billed or expires."""

    amount_usd: Usd
    expires_at: float = Field(description="Epoch seconds.")


class BudgetState(Model):
    """A user's month: what was billed, and what is reserved by turns still running."""

    spent_usd: Usd = Decimal(0)
    reservations: dict[str, Reservation] = Field(default_factory=dict)

    def live_reservations(self, now: float) -> dict[str, Reservation]:
        """The reservations that have not expired."""
        return {key: r for key, r in self.reservations.items() if r.expires_at > now}

    def reserved_usd(self, now: float) -> Decimal:
        return sum((r.amount_usd for r in self.live_reservations(now).values()), Decimal(0))

    def settled(self, turn: str | None, cost: Decimal) -> BudgetState:
        """`cost` added to the spend and the reservation of `turn` (if any) dropped."""
        left = {key: r for key, r in self.reservations.items() if key != turn}
        return BudgetState(spent_usd=self.spent_usd + cost, reservations=left)


class BudgetLimit(Model):
    """A user's monthly budget in USD; None = unlimited (overrides the role's default)."""

    user_id: str
    monthly_usd: Usd | None = Field(default=None, ge=0)
