"""The local model (all-MiniLM-L6-v2), in this process."""

from __future__ import annotations

import logging

import pytest
from chatbus_embeddings.embedder import LOCAL_DIMENSIONS, LocalEmbedder


async def test_embedding_prints_no_progress_bar(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the services log at INFO, where the library shows bars
    embedder = LocalEmbedder(torch_threads=1)
    embedded = await embedder.embed(["hello world", "a second text"])
    assert [len(vector) for vector in embedded.vectors] == [LOCAL_DIMENSIONS] * 2
    assert "Batches" not in capfd.readouterr().err  # `make dev` printed one per message
