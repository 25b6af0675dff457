"""The embeddings service's whole wiring: batched `message.created`, `conversation.deleted`."""

from __future__ import annotations

import logging
from pathlib import Path

from chatbus_contracts.events import ConversationDeleted, MessageCreated
from chatbus_contracts.streams import EMBEDDINGS_CONSUMER, EMBEDDINGS_DELETIONS_CONSUMER
from chatbus_runtime.bus import create_broker, durable_subscription, start_broker
from chatbus_runtime.database import create_engine, upgrade_schema
from faststream.nats import NatsBroker
from opentelemetry.sdk.trace import TracerProvider

from .embedder import LocalEmbedder
from .models import SCHEMA
from .settings import EmbeddingsSettings
from .store import EmbeddingStore

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


class EmbeddingsService:
    """Owns message vectors; embeds every stored message in batches."""

    def __init__(self, settings: EmbeddingsSettings, tracer_provider: TracerProvider) -> None:
        self.settings = settings
        self.broker: NatsBroker = create_broker(
            settings, service_name="embeddings", tracer_provider=tracer_provider
        )
        self.engine = create_engine(settings.database_url)
        self.embedder = LocalEmbedder(settings.torch_threads)
        self.store = EmbeddingStore(self.engine)
        embedder, store = self.embedder, self.store
        subscription = durable_subscription(
            EMBEDDINGS_CONSUMER, batch_size=settings.embed_batch_size, batch=True
        )

        # A backlog arrives in full batches, so it drains at the model's batch speed.
        @self.broker.subscriber(**subscription)
        async def on_messages_created(events: list[MessageCreated]) -> None:
            vectors = await embedder.embed([event.content for event in events])
            await store.save(events, vectors, embedder.model_name)

        @self.broker.subscriber(**durable_subscription(EMBEDDINGS_DELETIONS_CONSUMER))
        async def on_conversation_deleted(event: ConversationDeleted) -> None:
            await store.drop_conversation(event)

    async def start(self) -> None:
        """Migrate, load the model, then start consuming."""
        if self.settings.migrate_on_start:
            await upgrade_schema(MIGRATIONS, self.settings.database_url, SCHEMA)
        await self.embedder.load()
        await start_broker(self.broker, EMBEDDINGS_CONSUMER, EMBEDDINGS_DELETIONS_CONSUMER)
        logger.info("embeddings service started (%s)", self.embedder.model_name)

    async def stop(self) -> None:
        """Stop consuming, then close the database pool."""
        await self.broker.stop()
        await self.engine.dispose()
