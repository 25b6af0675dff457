"""Request/reply answers: embed texts for a client (billed), find a user's similar messages."""

from __future__ import annotations

import logging
import time

from chatbus_contracts.embeddings import (
    EmbeddedTexts,
    EmbedRefused,
    EmbedTexts,
    FindSimilar,
    SimilarMessages,
    pack_vector,
)
from chatbus_runtime.bus import publish_event
from faststream.nats import NatsBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from .backends import EmbeddingBackend, EmbeddingError, EmbeddingModels
from .billing import embedding_usage
from .similarity import find_similar

logger = logging.getLogger(__name__)


class EmbeddingAnswers:
    """What the gateway (`POST /v1/embeddings`, search) and inference (memory) ask."""

    def __init__(
        self,
        broker: NatsBroker,
        engine: AsyncEngine,
        models: EmbeddingModels,
        memory: EmbeddingBackend,
    ) -> None:
        self._broker = broker
        self._engine = engine
        self._models = models
        self._memory = memory

    async def embed(self, request: EmbedTexts) -> EmbeddedTexts | EmbedRefused:
        """Vectors for the texts, billed to the user as one call."""
        started = time.monotonic()
        try:
            backend = self._models.get(request.model)
            embedded = await backend.embed(list(request.texts), request.dimensions)
        except EmbeddingError as error:
            return EmbedRefused.model_validate({"code": error.code, "message": error.message})
        latency_ms = int((time.monotonic() - started) * 1000)
        usage = embedding_usage(request, backend, embedded.prompt_tokens, latency_ms)
        await publish_event(self._broker, usage)
        return EmbeddedTexts(
            model=backend.model_name,
            dimensions=len(embedded.vectors[0]),
            vectors=[pack_vector(vector) for vector in embedded.vectors],
            prompt_tokens=embedded.prompt_tokens,
            truncated=embedded.truncated,
        )

    async def similar(self, query: FindSimilar) -> SimilarMessages:
        """The user's messages nearest to the query, embedded with the memory model."""
        embedded = await self._memory.embed([query.query])
        hits = await find_similar(self._engine, query, embedded.vectors[0], self._memory.model_name)
        return SimilarMessages(model=self._memory.model_name, hits=hits)
