"""The demo provider: answers without any API key, and says so."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from chatbus_contracts.common import FinishReason, TokenUsage

from .base import CompletionRequest, Finished, StreamEvent, TextDelta

DEMO_MODEL = "demo"
_TOKEN = re.compile(r"\S+\s*|\s+")


def _estimate_tokens(text: str) -> int:
    return max(1, len(text.split()))


def demo_reply(request: CompletionRequest) -> str:
    """The demo's answer: a labelled echo of the last user message."""
    last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    turns = sum(1 for m in request.messages if m.role == "user")
    return (
        "[demo provider: no API key is set, so this is not a real model] "
        f"This is turn {turns} of the conversation. You said: {last_user}"
    )


class DemoProvider:
    """Streams `demo_reply` word by word with a small delay, like a real model."""

    name = "demo"
    supports_tools = False

    def __init__(self, token_delay_seconds: float = 0.015) -> None:
        self._delay = token_delay_seconds

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """Stream the demo reply; usage counts words, which is what the demo bills (nothing)."""
        reply = demo_reply(request)
        tokens = _TOKEN.findall(reply)
        if request.max_tokens is not None:
            tokens = tokens[: request.max_tokens]
        for token in tokens:
            if self._delay:
                await asyncio.sleep(self._delay)
            yield TextDelta(token)
        prompt = sum(_estimate_tokens(m.content) for m in request.messages)
        finish: FinishReason = "length" if len(tokens) < len(_TOKEN.findall(reply)) else "stop"
        yield Finished(
            usage=TokenUsage(prompt_tokens=prompt, completion_tokens=len(tokens)),
            finish_reason=finish,
            model=DEMO_MODEL,
        )
