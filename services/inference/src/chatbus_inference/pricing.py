"""Cost of a call from the genai-prices table (never a hand-written price)."""

from __future__ import annotations

import logging
from decimal import Decimal

import genai_prices
from chatbus_contracts.common import TokenUsage
from genai_prices import Usage, calc_price
from opentelemetry import metrics

logger = logging.getLogger(__name__)
PRICE_SOURCE = f"genai-prices {genai_prices.__version__}"

_unpriced_calls = metrics.get_meter("chatbus.inference").create_counter(
    "chatbus.unpriced_calls",
    unit="{call}",
    description="Billed calls recorded with cost=null: the model is not in the price table.",
)


def price_call(usage: TokenUsage, model: str, provider: str) -> tuple[Decimal | None, str | None]:
    """(cost in USD, price source); (None, None) when the table does not know the model.

    The demo provider costs nothing. `input_tokens` is the whole prompt including
    cached tokens, which is what genai-prices expects.
    """
    if provider == "demo":
        return Decimal(0), "demo provider (free)"
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
        logger.warning("no price for model %r of provider %r; recording cost=null", model, provider)
        _unpriced_calls.add(1, {"model": model, "provider": provider})
        return None, None
    return calculation.total_price, PRICE_SOURCE
