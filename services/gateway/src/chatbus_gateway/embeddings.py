"""Questions to the embeddings service over NATS request/reply."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

from chatbus_contracts import subjects
from chatbus_contracts.common import derived_id
from chatbus_contracts.embeddings import (
    PART_MAX_CHARS,
    PART_MAX_ITEMS,
    EmbeddedTexts,
    EmbedRefused,
    EmbedTexts,
    FindSimilar,
    SimilarMessages,
)
from chatbus_runtime import rpc
from faststream.nats import NatsBroker
from pydantic import ValidationError


class EmbedRefusedError(Exception):
    """The embeddings service refused; carries its answer."""

    def __init__(self, refused: EmbedRefused) -> None:
        super().__init__(refused.message)
        self.refused = refused


@dataclass(frozen=True)
class Embeddings:
    """Every input's vector (base64 float32), in order, with what the parts reported."""

    model: str
    packed_vectors: list[str]
    prompt_tokens: int
    truncated: list[int]


def split_parts(texts: list[str]) -> list[tuple[int, list[str]]]:
    """(offset, texts) parts of at most PART_MAX_ITEMS items and PART_MAX_CHARS characters."""
    parts: list[tuple[int, list[str]]] = []
    start, size = 0, 0
    for index, text in enumerate(texts):
        full = index - start >= PART_MAX_ITEMS or (size + len(text) > PART_MAX_CHARS and size)
        if full:
            parts.append((start, texts[start:index]))
            start, size = index, 0
        size += len(text)
    parts.append((start, texts[start:]))
    return parts


class EmbeddingsClient:
    """Typed calls; the user id always comes from the verified identity."""

    def __init__(self, broker: NatsBroker, timeout_seconds: float) -> None:
        self._broker = broker
        self._timeout = timeout_seconds

    async def embed(
        self, user_id: str, request_id: UUID, model: str, texts: list[str], dimensions: int | None
    ) -> Embeddings:
        """Vectors for `texts`, asked in parts at once; `EmbedRefusedError` if any is refused."""
        parts = split_parts(texts)
        answers = await asyncio.gather(
            *(
                self._embed_part(
                    EmbedTexts(
                        user_id=user_id,
                        request_id=derived_id(request_id, number),
                        model=model,
                        texts=part,
                        dimensions=dimensions,
                    )
                )
                for number, (_, part) in enumerate(parts)
            )
        )
        return Embeddings(
            model=answers[0].model,
            packed_vectors=[vector for answer in answers for vector in answer.vectors],
            prompt_tokens=sum(answer.prompt_tokens for answer in answers),
            truncated=[
                offset + index
                for (offset, _), answer in zip(parts, answers, strict=True)
                for index in answer.truncated
            ],
        )

    async def _embed_part(self, request: EmbedTexts) -> EmbeddedTexts:
        reply = await rpc.request(
            self._broker, subjects.EMBEDDINGS_EMBED, request, timeout_seconds=self._timeout
        )
        try:
            return EmbeddedTexts.model_validate_json(reply)
        except ValidationError:
            raise EmbedRefusedError(EmbedRefused.model_validate_json(reply)) from None

    async def similar(self, query: FindSimilar) -> SimilarMessages:
        """The user's messages nearest to the query."""
        return await rpc.ask(
            self._broker,
            subjects.EMBEDDINGS_SIMILAR,
            query,
            SimilarMessages,
            timeout_seconds=self._timeout,
        )
