"""Settings of the embeddings service."""

from __future__ import annotations

from chatbus_runtime.settings import ServiceSettings
from pydantic import Field


class EmbeddingsSettings(ServiceSettings):
    """`CHATBUS_*` variables read by the embeddings service."""

    migrate_on_start: bool = True
    embed_batch_size: int = Field(default=32, ge=1, le=512)
    torch_threads: int | None = Field(default=None, ge=1, description="None: torch's default.")
