"""Rows of the `conversation` schema as the contract models clients and inference see."""

from __future__ import annotations

from chatbus_contracts.common import ChatSettings, TokenUsage
from chatbus_contracts.queries import ConversationView, MessageView

from .models import ConversationRow, MessageRow


def settings_of(row: ConversationRow) -> ChatSettings:
    """A conversation's own settings."""
    return ChatSettings(
        system_prompt=row.system_prompt,
        model=row.model,
        provider=row.provider,
        temperature=row.temperature,
        max_tokens=row.max_tokens,
        memory=row.memory,
    )


def conversation_view(row: ConversationRow) -> ConversationView:
    """A conversation without its messages."""
    return ConversationView(
        id=row.id,
        title=row.title,
        created_at=row.created_at,
        updated_at=row.updated_at,
        settings=settings_of(row),
        active_message_id=row.active_message_id,
        message_count=row.message_count,
        total_tokens=row.total_tokens,
        cost_usd=row.cost_usd,
    )


def message_view(row: MessageRow) -> MessageView:
    """One stored message."""
    usage = None
    if row.prompt_tokens is not None and row.completion_tokens is not None:
        usage = TokenUsage(
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            cached_tokens=row.cached_tokens or 0,
            cache_write_tokens=row.cache_write_tokens or 0,
        )
    return MessageView(
        id=row.id,
        conversation_id=row.conversation_id,
        request_id=row.request_id,
        role=row.role,
        content=row.content,
        parent_id=row.parent_id,
        created_at=row.created_at,
        model=row.model,
        provider=row.provider,
        usage=usage,
        cost_usd=row.cost_usd,
        finish_reason=row.finish_reason,
        latency_ms=row.latency_ms,
        context_message_ids=row.context_message_ids,
    )
