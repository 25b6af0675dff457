"""Cost of a call: the operator's override for the model, else the genai-prices table.

chatbus itself never writes a price down. Operators may price a model the table lacks
(a self-hosted one) or one they pay differently for, with `CHATBUS_PRICE_OVERRIDES`
(USD per million tokens); the service installs them once at start-up.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import genai_prices
from chatbus_contracts.common import TokenUsage
from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot
from opentelemetry import metrics
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)
PRICE_SOURCE = f"genai-prices {genai_prices.__version__}"

_unpriced_calls = metrics.get_meter("chatbus.pricing").create_counter(
    "chatbus.unpriced_calls",
    unit="{call}",
    description="Billed calls recorded with cost=null: the model is not in the price table.",
)


class ModelPrice(BaseModel):
    """An operator's price for one model, in USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    cache_read_per_mtok: Decimal | None = Field(default=None, ge=0, description="Default: input.")
    cache_write_per_mtok: Decimal | None = Field(default=None, ge=0, description="Default: input.")

    def cost(self, usage: TokenUsage) -> Decimal:
        """Uncached prompt, cache reads, cache writes and completion, each at its price."""
        read, write = self.cache_read_per_mtok, self.cache_write_per_mtok
        uncached = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
        total = (
            max(uncached, 0) * self.input_per_mtok
            + usage.cached_tokens * (self.input_per_mtok if read is None else read)
            + usage.cache_write_tokens * (self.input_per_mtok if write is None else write)
            + usage.completion_tokens * self.output_per_mtok
        )
        return total / _MILLION


_MILLION = Decimal(1_000_000)
FREE_PROVIDERS = {"demo": "demo provider (free)", "local": "local model (free)"}
OVERRIDE_SOURCE = "operator override (CHATBUS_PRICE_OVERRIDES)"
_overrides: dict[str, ModelPrice] = {}


def install_price_overrides(overrides: dict[str, ModelPrice]) -> None:
    """Price these models (by the name the provider is called with) instead of the table."""
    _overrides.clear()
    _overrides.update(overrides)


def load_price_table() -> None:
    """Load genai-prices' table now rather than at the first billed call (~15 ms and ~16,000
    objects, which a service started later freezes with the rest of its start-up heap)."""
    get_snapshot()


def price_call(usage: TokenUsage, model: str, provider: str) -> tuple[Decimal | None, str | None]:
    """(cost in USD, price source); (None, None) when the table does not know the model.

    The demo provider and local models cost nothing. `input_tokens` is the whole prompt including
    cached tokens, which is what genai-prices expects.
    """
    if provider in FREE_PROVIDERS:
        return Decimal(0), FREE_PROVIDERS[provider]
    override = _overrides.get(model)
    if override is not None:
        return override.cost(usage), OVERRIDE_SOURCE
    try:
        calculation = calc_price(
            Usage(
                input_tokens=usage.prompt_tokens,
                output_tokens=usage.completion_tokens,
                cache_read_tokens=usage.cached_tokens,
                cache_write_tokens=usage.cache_write_tokens,
            ),
            model,
            provider_id=provider,
        )
    except LookupError:
        return None, None
    return calculation.total_price, PRICE_SOURCE


def price_billed_call(
    usage: TokenUsage, model: str, provider: str
) -> tuple[Decimal | None, str | None]:
    """`price_call` for a call being billed: one without a price is logged and counted."""
    cost, source = price_call(usage, model, provider)
    if cost is None:
        logger.warning("no price for model %r of provider %r; recording cost=null", model, provider)
        _unpriced_calls.add(1, {"model": model, "provider": provider})
    return cost, source
