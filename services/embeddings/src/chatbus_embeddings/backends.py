"""What an embedding backend is, and which backend serves which model name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Embedded:
    """Unit-length vectors in input order, the tokens billed, and which inputs were cut."""

    vectors: list[list[float]]
    prompt_tokens: int
    truncated: list[int] = field(default_factory=list)


class EmbeddingError(Exception):
    """A model cannot embed these inputs; `code` is an `EmbedRefused` code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EmbeddingBackend(Protocol):
    """Embeds texts with one model."""

    @property
    def provider(self) -> str:
        """`local` or `openai` (the billing provider)."""
        ...

    @property
    def model_name(self) -> str:
        """The model's name as clients call it."""
        ...

    async def load(self) -> None:
        """Prepare the model (idempotent)."""
        ...

    async def embed(self, texts: list[str], dimensions: int | None = None) -> Embedded:
        """Vectors for `texts`; `EmbeddingError` for what the model cannot do."""
        ...


class EmbeddingModels:
    """Model names to backends: the local model always, the openai ones when configured."""

    def __init__(self, backends: list[EmbeddingBackend], aliases: dict[str, str]) -> None:
        self._backends = {backend.model_name: backend for backend in backends}
        self._aliases = aliases

    @property
    def names(self) -> list[str]:
        """Every model clients may name."""
        return sorted(self._backends)

    def get(self, name: str) -> EmbeddingBackend:
        """The backend of `name`; `EmbeddingError(unknown_model)` when none serves it."""
        backend = self._backends.get(self._aliases.get(name, name))
        if backend is None:
            raise EmbeddingError(
                "unknown_model",
                f"unknown embedding model {name!r}; available: {', '.join(self.names)}",
            )
        return backend
