"""Pull the text out of OpenAI and Anthropic request bodies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chatbus_emulator.tokens import estimate_tokens


@dataclass(frozen=True, slots=True)
class Prompt:
    """The text a request sends, as far as the emulator cares."""

    texts: tuple[str, ...]
    """Every text fragment: system prompt and all message contents, in order."""
    last_user_text: str
    """Text of the last ``user`` message, or ``""`` if there is none."""

    @property
    def estimated_tokens(self) -> int:
        """Whitespace-separated words across all texts, at least 1."""
        return estimate_tokens(list(self.texts))


def collect_text(content: Any) -> list[str]:
    """Collect text from a message ``content``: a string, or (nested) content blocks.

    Blocks contribute their ``text`` and, for blocks such as ``tool_result``, their own
    nested ``content``; other block kinds (images, documents) contribute nothing.
    """
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [text for item in content for text in collect_text(item)]
    if isinstance(content, Mapping):
        found: list[str] = []
        text = content.get("text")
        if isinstance(text, str):
            found.append(text)
        if "content" in content:
            found.extend(collect_text(content["content"]))
        return found
    return []


def _from_messages(messages: list[Any], system: Any = None) -> Prompt:
    texts = collect_text(system) if system is not None else []
    last_user = ""
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        message_texts = collect_text(message.get("content"))
        texts.extend(message_texts)
        if message.get("role") == "user":
            last_user = "".join(message_texts)
    return Prompt(texts=tuple(texts), last_user_text=last_user)


def openai_prompt(body: Mapping[str, Any]) -> Prompt:
    """Prompt of an OpenAI chat-completions body (system prompts are messages there)."""
    return _from_messages(list(body.get("messages") or []))


def anthropic_prompt(body: Mapping[str, Any]) -> Prompt:
    """Prompt of an Anthropic Messages body; ``system`` may be a string or text blocks."""
    return _from_messages(list(body.get("messages") or []), body.get("system"))
