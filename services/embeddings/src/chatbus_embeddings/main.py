"""Console entry point: `chatbus-embeddings`."""

from __future__ import annotations

from chatbus_runtime.service import run_service

from .app import EmbeddingsService
from .settings import EmbeddingsSettings


def run() -> None:
    """Run the embeddings service until SIGINT/SIGTERM."""
    run_service("embeddings", EmbeddingsSettings(), EmbeddingsService)
