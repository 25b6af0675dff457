"""Retrieval memory: the user's most relevant earlier messages, added to the prompt as context.

When a turn's settings have `memory` on, the question is sent to the embeddings
service (`embeddings.query.similar`), which answers with the user's most similar
messages from their *other* conversations (this one's history is in the prompt
already). They become one system message after the system prompt, marked as context,
and their ids are recorded on the answer (`context_message_ids`). Memory is a
nicety: if the embeddings service does not answer in time, the turn goes on without.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

from chatbus_contracts import subjects
from chatbus_contracts.embeddings import FindSimilar, SimilarMessage, SimilarMessages
from chatbus_runtime import rpc
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

from .providers.base import PromptMessage

logger = logging.getLogger(__name__)

HEADER = (
    "Context: messages from the user's earlier conversations, retrieved because they may "
    "be relevant to the question. Use them only if they help; they are not part of this "
    "conversation."
)
MAX_CHARS_PER_MESSAGE = 1_000


@dataclass(frozen=True)
class Recollection:
    """The context message for the prompt, and which stored messages it quotes."""

    message: PromptMessage
    message_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class Memory:
    """How much to recall, and how long to wait for it."""

    broker: NatsBroker
    top_k: int
    min_similarity: float
    timeout_seconds: float

    async def recall(
        self, user_id: str, conversation_id: UUID, question: str
    ) -> Recollection | None:
        """The context for `question`, or None (nothing relevant, or no answer in time)."""
        query = FindSimilar(
            user_id=user_id,
            query=question[:8_000],
            limit=self.top_k,
            min_similarity=self.min_similarity,
            exclude_conversation_id=conversation_id,
        )
        try:
            answer = await rpc.ask(
                self.broker,
                subjects.EMBEDDINGS_SIMILAR,
                query,
                SimilarMessages,
                timeout_seconds=self.timeout_seconds,
            )
        except (TimeoutError, NatsError) as error:
            logger.warning("retrieval memory skipped for this turn: %s", error)
            return None
        if not (hits := answer.hits):
            return None
        return Recollection(context_message(hits), tuple(hit.message_id for hit in hits))


def context_message(hits: list[SimilarMessage]) -> PromptMessage:
    """One system message quoting each hit with its role and date."""
    quoted = [
        f"[{number}] {hit.role}, {hit.created_at:%Y-%m-%d}: "
        f"{_clip(hit.content, MAX_CHARS_PER_MESSAGE)}"
        for number, hit in enumerate(hits, start=1)
    ]
    return PromptMessage("system", "\n\n".join([HEADER, *quoted]))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
