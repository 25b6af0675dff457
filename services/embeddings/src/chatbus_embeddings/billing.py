"""An embedding call as a `usage.recorded` event (one ledger row, priced like any call)."""

from __future__ import annotations

from chatbus_contracts import subjects
from chatbus_contracts.common import TokenUsage, derived_id
from chatbus_contracts.embeddings import EmbedTexts
from chatbus_contracts.events import UsageRecorded
from chatbus_runtime.pricing import price_billed_call

from .backends import EmbeddingBackend


def embedding_usage(
    request: EmbedTexts, backend: EmbeddingBackend, prompt_tokens: int, latency_ms: int
) -> UsageRecorded:
    """The bill of one `EmbedTexts`; its event id is the request's, so a retry bills once."""
    usage = TokenUsage(prompt_tokens=prompt_tokens, completion_tokens=0)
    cost, source = price_billed_call(usage, backend.model_name, backend.provider)
    return UsageRecorded(
        event_id=derived_id(request.request_id, subjects.USAGE_RECORDED, "embedding"),
        user_id=request.user_id,
        request_id=request.request_id,
        conversation_id=None,
        message_id=None,
        kind="embedding",
        provider=backend.provider,
        model=backend.model_name,
        usage=usage,
        cost_usd=cost,
        price_source=source,
        latency_ms=latency_ms,
    )
