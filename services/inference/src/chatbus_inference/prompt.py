"""The prompt of a turn: system prompt, stored history, the new user message, trimmed to fit.

Token estimate: a quarter of the characters plus 4 per message (the role and framing),
the usual rule of thumb for English text with BPE tokenizers. It errs on the side of
counting too many, so a trimmed prompt fits the window.
"""

from __future__ import annotations

from .providers.base import PromptMessage


def estimate_tokens(text: str) -> int:
    """Tokens of one message, estimated (see the module docstring)."""
    return len(text) // 4 + 4


def trim_to_window(
    messages: list[PromptMessage], context_window: int, reserved_for_output: int
) -> list[PromptMessage]:
    """Keep the system prompt and the newest messages that fit; the last one always stays.

    The kept messages never start with a `tool` result cut off from its tool call.
    """
    budget = context_window - reserved_for_output
    system = [m for m in messages if m.role == "system"]
    budget -= sum(estimate_tokens(m.content) for m in system)
    kept: list[PromptMessage] = []
    for message in reversed([m for m in messages if m.role != "system"]):
        cost = estimate_tokens(message.content)
        if kept and cost > budget:
            break
        kept.append(message)
        budget -= cost
    kept.reverse()
    # A tool result whose assistant tool call was trimmed away is refused upstream.
    while len(kept) > 1 and kept[0].role == "tool":
        kept.pop(0)
    return system + kept
