"""Automatic titles: after the first answer of an untitled conversation, a cheap model names it.

The title is proposed to the conversation service as `UpdateConversation.generated_title`,
which applies it only while the title is still the first words of the first message
(never over a rename) and publishes `conversation.updated`. The call is billed as its
own `usage.recorded` (kind `title`). The demo provider's title is the plain first words.
A failure only logs: the conversation keeps its first-words title.
"""

from __future__ import annotations

import asyncio
import logging

from chatbus_contracts import subjects
from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.common import TITLE_MAX_CHARS, first_words
from chatbus_contracts.conversations import ConversationChanged, Refused, UpdateConversation
from chatbus_runtime import rpc
from chatbus_runtime.bus import publish_event
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from pydantic import ValidationError

from .billing import usage_recorded
from .providers.base import CompletionRequest, Finished, PromptMessage, ProviderError, TextDelta
from .routing import ProviderRouter, Route

logger = logging.getLogger(__name__)

INSTRUCTION = (
    "Write a title of at most six words for the conversation below. "
    "Answer with the title only: no quotes, no final full stop."
)
EXCERPT_CHARS = 2000


def clean_title(text: str) -> str:
    """A model's answer as a title: one line, no quotes or trailing full stop."""
    line = " ".join(text.split()).strip().strip("\"'“”*#").rstrip(".").strip()
    return line[:TITLE_MAX_CHARS]


class TitleWriter:
    """Generates and proposes the title of a new conversation."""

    def __init__(
        self,
        broker: NatsBroker,
        router: ProviderRouter,
        *,
        title_model: str | None,
        timeout_seconds: float,
    ) -> None:
        self._broker = broker
        self._router = router
        self._title_model = title_model
        self._timeout = timeout_seconds

    async def write(self, request: GenerateReply, turn_route: Route, answer: str) -> None:
        """Title the conversation of `request`; never raises."""
        try:
            title = await asyncio.wait_for(self._title(request, turn_route, answer), self._timeout)
            if not title:
                return
            command = UpdateConversation(
                user_id=request.user_id,
                conversation_id=request.conversation_id,
                generated_title=title,
            )
            reply = await rpc.request(
                self._broker,
                subjects.CONVERSATION_COMMAND_UPDATE,
                command,
                timeout_seconds=self._timeout,
            )
            if (refused := _refusal(reply)) is not None:
                logger.warning("title for %s not applied: %s", request.conversation_id, refused)
        except (ProviderError, NatsError, TimeoutError) as error:
            logger.warning("no title for %s: %s", request.conversation_id, error)
        except Exception:  # a title is never worth failing (and regenerating) a turn
            logger.exception("no title for %s", request.conversation_id)

    async def _title(self, request: GenerateReply, turn_route: Route, answer: str) -> str:
        route = self._router.routes(self._title_model)[0] if self._title_model else turn_route
        if route.provider.name == "demo":
            return first_words(request.content)
        completion = CompletionRequest(
            model=route.model,
            messages=[
                PromptMessage("system", INSTRUCTION),
                PromptMessage(
                    "user",
                    f"User: {request.content[:EXCERPT_CHARS]}\n\n"
                    f"Assistant: {answer[:EXCERPT_CHARS]}",
                ),
            ],
            max_tokens=24,
        )
        parts: list[str] = []
        async for event in route.provider.stream(completion):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, Finished):
                await publish_event(
                    self._broker,
                    usage_recorded(
                        request,
                        route.provider.name,
                        event.model,
                        event.usage,
                        event.finish_reason,
                        None,
                        kind="title",
                    ),
                )
        return clean_title("".join(parts))


def _refusal(reply: bytes) -> str | None:
    """Why the conversation service did not apply a title; None if it answered with the
    conversation (titled, or kept as the user named it)."""
    try:
        refused = Refused.model_validate_json(reply)
    except ValidationError:
        pass
    else:
        return f"refused, {refused.code}: {refused.message}"
    try:
        ConversationChanged.model_validate_json(reply)
    except ValidationError:
        return f"an answer that is neither the conversation nor a refusal ({len(reply)} bytes)"
    return None
