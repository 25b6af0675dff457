"""The embeddings service's whole wiring.

Consumes `message.created` (batched) and `conversation.deleted`; answers
`embeddings.embed` (POST /v1/embeddings) and `embeddings.query.similar` (search and
retrieval memory) in the `embeddings` queue group.
"""

from __future__ import annotations

import logging
from pathlib import Path

from chatbus_contracts import subjects
from chatbus_contracts.embeddings import (
    EmbeddedTexts,
    EmbedRefused,
    EmbedTexts,
    FindSimilar,
    SimilarMessages,
)
from chatbus_contracts.events import ConversationDeleted, MessageCreated
from chatbus_contracts.streams import EMBEDDINGS_CONSUMER, EMBEDDINGS_DELETIONS_CONSUMER
from chatbus_runtime.bus import create_broker, start_broker, stop_broker
from chatbus_runtime.consumers import consume, consume_batches
from chatbus_runtime.database import create_engine, upgrade_schema
from chatbus_runtime.pricing import install_price_overrides
from chatbus_runtime.rpc import replies_to
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import TracerProvider

from .answers import EmbeddingAnswers
from .models import SCHEMA
from .registry import configured_models
from .settings import EmbeddingsSettings
from .store import EmbeddingStore

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
ANSWERS_AT_ONCE = 8


class EmbeddingsService:
    """Owns message vectors; embeds every stored message in batches."""

    def __init__(self, settings: EmbeddingsSettings, tracer_provider: TracerProvider) -> None:
        self.settings = settings
        install_price_overrides(settings.price_overrides)
        self.broker: NatsBroker = create_broker(
            settings, service_name="embeddings", tracer_provider=tracer_provider
        )
        self.engine = create_engine(settings.database_url)
        self.models = configured_models(settings)
        self.embedder = self.models.get(settings.memory_model)
        self.store = EmbeddingStore(self.engine)
        self.answers = EmbeddingAnswers(self.broker, self.engine, self.models, self.embedder)
        self._wire()

    def _wire(self) -> None:
        embedder, store, answers = self.embedder, self.store, self.answers

        # A backlog arrives in full batches, so it drains at the model's batch speed.
        # An empty message (a turn stopped before its first token) has nothing to find.
        async def on_messages_created(msgs: list[Msg]) -> None:
            events = [MessageCreated.model_validate_json(msg.data) for msg in msgs]
            events = [event for event in events if event.content.strip()]
            if events:
                embedded = await embedder.embed([event.content for event in events])
                await store.save(events, embedded.vectors, embedder.model_name)

        async def on_conversation_deleted(msg: Msg) -> None:
            await store.drop_conversation(ConversationDeleted.model_validate_json(msg.data))

        batch_size = self.settings.embed_batch_size
        consume_batches(
            self.broker, EMBEDDINGS_CONSUMER, on_messages_created, batch_size=batch_size
        )
        consume(self.broker, EMBEDDINGS_DELETIONS_CONSUMER, on_conversation_deleted)

        # Several at once: a search query is not held up by a long embedding request.
        queue, workers = subjects.EMBEDDINGS_QUEUE, ANSWERS_AT_ONCE

        @replies_to(
            self.broker, subjects.EMBEDDINGS_EMBED, EmbedTexts, queue=queue, max_workers=workers
        )
        async def embed(request: EmbedTexts) -> EmbeddedTexts | EmbedRefused:
            return await answers.embed(request)

        @replies_to(
            self.broker, subjects.EMBEDDINGS_SIMILAR, FindSimilar, queue=queue, max_workers=workers
        )
        async def similar(query: FindSimilar) -> SimilarMessages:
            return await answers.similar(query)

    async def start(self) -> None:
        """Migrate, load the model, then start consuming."""
        if self.settings.migrate_on_start:
            await upgrade_schema(MIGRATIONS, self.settings.database_url, SCHEMA)
        await self.embedder.load()
        await start_broker(self.broker)
        logger.info("embeddings service started (%s)", self.embedder.model_name)

    async def stop(self) -> None:
        """Stop consuming, then close the database pool."""
        await stop_broker(self.broker)
        await self.engine.dispose()
