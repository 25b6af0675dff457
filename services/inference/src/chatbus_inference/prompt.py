"""The prompt of a turn: system prompt, stored history, the new user message."""

from __future__ import annotations

from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.queries import MessageView

from .providers.base import PromptMessage


def build_prompt(request: GenerateReply, history: list[MessageView]) -> list[PromptMessage]:
    """Messages in the order the provider reads them."""
    messages: list[PromptMessage] = []
    if request.system:
        messages.append(PromptMessage("system", request.system))
    messages.extend(PromptMessage(m.role, m.content) for m in history if m.role != "system")
    messages.append(PromptMessage("user", request.content))
    return messages
