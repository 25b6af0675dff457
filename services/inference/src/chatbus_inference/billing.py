"""What a turn bills: priced usage events, and estimates where the provider reported none."""

from __future__ import annotations

from typing import Literal

from chatbus_contracts import subjects
from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.common import FinishReason, TokenUsage, derived_id
from chatbus_contracts.events import UsageRecorded
from chatbus_runtime.pricing import price_billed_call

from .prompt import estimate_tokens
from .providers.base import PromptMessage


def estimate_usage(prompt: list[PromptMessage], parts: list[str]) -> TokenUsage:
    """Usage of a stream cut short before the provider reported any, marked as estimated.

    Prompt tokens by the character estimate; completion tokens = chunks received
    (providers send about one token per chunk).
    """
    return TokenUsage(
        prompt_tokens=sum(estimate_tokens(m.content) for m in prompt),
        completion_tokens=len(parts),
        estimated=True,
    )


def usage_recorded(
    request: GenerateReply,
    provider: str,
    model: str,
    usage: TokenUsage,
    finish_reason: FinishReason,
    latency_ms: int | None,
    *,
    status: Literal["completed", "stopped", "failed"] | None = None,
    kind: Literal["chat", "title"] = "chat",
) -> UsageRecorded:
    """The priced `usage.recorded` event of a turn's provider call."""
    cost, price_source = price_billed_call(usage, model, provider)
    if status is None:
        status = "stopped" if finish_reason == "stopped" else "completed"
    event_id = derived_id(request.request_id, subjects.USAGE_RECORDED)
    if kind != "chat":
        event_id = derived_id(request.request_id, subjects.USAGE_RECORDED, kind)
    return UsageRecorded(
        event_id=event_id,
        kind=kind,
        user_id=request.user_id,
        request_id=request.request_id,
        conversation_id=request.conversation_id,
        message_id=request.assistant_message_id if kind == "chat" else None,
        status=status,
        provider=provider,
        model=model,
        usage=usage,
        cost_usd=cost,
        price_source=price_source,
        latency_ms=latency_ms,
        finish_reason=finish_reason,
    )
