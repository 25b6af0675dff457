"""The openai backend: any OpenAI-compatible `/v1/embeddings` (OpenAI, Ollama, vLLM, ...).

A text longer than three characters per token of the model's window is cut to that
before it is sent (reported in `Embedded.truncated`); text that still does not fit is
refused by the provider, and that refusal reaches the client as a 400.
"""

from __future__ import annotations

import math

from openai import APIConnectionError, APIStatusError, AsyncOpenAI, omit

from .backends import Embedded, EmbeddingError

CHARS_PER_TOKEN = 3


class OpenAIEmbedder:
    """One model served by an OpenAI-compatible endpoint."""

    provider = "openai"

    def __init__(self, client: AsyncOpenAI, model: str, window_tokens: int) -> None:
        self._client = client
        self.model_name = model
        self._max_chars = window_tokens * CHARS_PER_TOKEN

    async def load(self) -> None:
        """Nothing to load."""

    async def embed(self, texts: list[str], dimensions: int | None = None) -> Embedded:
        """Vectors from the provider, normalised to unit length."""
        truncated = [index for index, text in enumerate(texts) if len(text) > self._max_chars]
        cut = [text[: self._max_chars] for text in texts]
        try:
            response = await self._client.embeddings.create(
                model=self.model_name,
                input=cut,
                encoding_format="float",
                dimensions=omit if dimensions is None else dimensions,
            )
        except APIStatusError as error:
            code = "invalid_request" if 400 <= error.status_code < 500 else "provider_error"
            raise EmbeddingError(code, f"provider refused: {error.message}") from error
        except APIConnectionError as error:
            raise EmbeddingError("provider_error", f"provider unreachable: {error}") from error
        ordered = sorted(response.data, key=lambda item: item.index)
        return Embedded(
            vectors=[_unit(item.embedding) for item in ordered],
            prompt_tokens=response.usage.prompt_tokens,
            truncated=truncated,
        )


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]
