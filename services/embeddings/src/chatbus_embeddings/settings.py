"""Settings of the embeddings service."""

from __future__ import annotations

from chatbus_runtime.pricing import ModelPrice
from chatbus_runtime.settings import ServiceSettings
from pydantic import AliasChoices, Field, SecretStr

from .embedder import LOCAL_MODEL

# Context windows (tokens) of OpenAI's embedding models; any OpenAI-compatible server's
# models (e.g. Ollama's "nomic-embed-text") can be listed in CHATBUS_OPENAI_EMBEDDING_MODELS.
OPENAI_EMBEDDING_WINDOWS = {
    "text-embedding-3-small": 8191,
    "text-embedding-3-large": 8191,
    "text-embedding-ada-002": 8191,
}


def _variable(name: str) -> AliasChoices:
    # A CHATBUS_EMBEDDINGS_-prefixed variable first, then the SDK's own.
    return AliasChoices(f"CHATBUS_EMBEDDINGS_{name}", name)


class EmbeddingsSettings(ServiceSettings):
    """`CHATBUS_*` variables read by the embeddings service."""

    migrate_on_start: bool = True
    embed_batch_size: int = Field(default=32, ge=1, le=512)
    torch_threads: int | None = Field(default=None, ge=1, description="None: torch's default.")
    memory_model: str = Field(
        default=LOCAL_MODEL,
        description="Model that embeds every stored message (search and retrieval memory).",
    )
    openai_embedding_models: dict[str, int] = Field(
        default_factory=lambda: dict(OPENAI_EMBEDDING_WINDOWS),
        description="Models of the OpenAI-compatible backend, with their windows in tokens.",
    )
    # The openai backend exists when either is set (like the inference service's provider).
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=_variable("OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(default=None, validation_alias=_variable("OPENAI_BASE_URL"))
    price_overrides: dict[str, ModelPrice] = Field(
        default_factory=dict, description="As the inference service's CHATBUS_PRICE_OVERRIDES."
    )
