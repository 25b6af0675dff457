"""The embedding models this deployment serves, from its settings."""

from __future__ import annotations

from .backends import EmbeddingBackend, EmbeddingModels
from .embedder import LOCAL_ALIASES, LocalEmbedder
from .settings import EmbeddingsSettings


def configured_models(settings: EmbeddingsSettings) -> EmbeddingModels:
    """The local model always; the OpenAI-compatible ones when a key or base URL is set."""
    backends: list[EmbeddingBackend] = [
        LocalEmbedder(settings.torch_threads, settings.embed_batch_size)
    ]
    if settings.openai_api_key is not None or settings.openai_base_url is not None:
        from openai import AsyncOpenAI

        from .openai_embedder import OpenAIEmbedder

        key = settings.openai_api_key
        client = AsyncOpenAI(
            api_key=key.get_secret_value() if key else "unused",
            base_url=settings.openai_base_url,
        )
        backends += [
            OpenAIEmbedder(client, model, window)
            for model, window in settings.openai_embedding_models.items()
        ]
    return EmbeddingModels(backends, LOCAL_ALIASES)
