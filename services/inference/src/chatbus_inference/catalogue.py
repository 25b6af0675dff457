"""The model catalogue: public model names -> provider, upstream model, limits, fallbacks.

Operators put their own in a TOML file named by `CHATBUS_MODELS_FILE`:

    [models."gpt-4o"]
    provider = "openai"
    upstream = "gpt-4o"
    context_window = 128000
    max_output_tokens = 4096
    fallbacks = ["claude-sonnet"]

Without a file the built-in catalogue below is used. A model a request names that is
not in the catalogue is sent as-is to the provider its name suggests.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from chatbus_contracts.queries import ModelInfo
from pydantic import BaseModel, ConfigDict, Field


class ModelEntry(BaseModel):
    """One public model name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    upstream: str
    context_window: int = Field(default=128_000, ge=1)
    max_output_tokens: int = Field(default=4096, ge=1)
    fallbacks: tuple[str, ...] = ()


class Catalogue(BaseModel):
    """Every public model name, by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[str, ModelEntry]

    def entry(self, name: str) -> ModelEntry:
        """The catalogue entry, or one guessed from the name's family."""
        known = self.models.get(name)
        if known is not None:
            return known
        return ModelEntry(provider=provider_for(name), upstream=name)

    def listing(self, configured: set[str]) -> list[ModelInfo]:
        """The models whose provider is configured, for `GET /v1/models`."""
        return [
            ModelInfo(
                id=name,
                provider=entry.provider,
                upstream=entry.upstream,
                context_window=entry.context_window,
                max_output_tokens=entry.max_output_tokens,
                fallbacks=list(entry.fallbacks),
            )
            for name, entry in sorted(self.models.items())
            if entry.provider in configured
        ]


def provider_for(model: str) -> str:
    """The provider a bare model name belongs to."""
    if model == "demo":
        return "demo"
    if model.startswith("claude"):
        return "anthropic"
    if model.startswith("gemini"):
        return "gemini"
    return "openai"


BUILT_IN = Catalogue(
    models={
        "demo": ModelEntry(provider="demo", upstream="demo", context_window=8192),
        "gpt-4o": ModelEntry(provider="openai", upstream="gpt-4o", fallbacks=("claude-sonnet",)),
        "gpt-4o-mini": ModelEntry(
            provider="openai", upstream="gpt-4o-mini", fallbacks=("claude-haiku",)
        ),
        "claude-sonnet": ModelEntry(
            provider="anthropic",
            upstream="claude-sonnet-4-6",
            context_window=200_000,
            max_output_tokens=8192,
            fallbacks=("gpt-4o",),
        ),
        "claude-haiku": ModelEntry(
            provider="anthropic",
            upstream="claude-haiku-4-5",
            context_window=200_000,
            max_output_tokens=8192,
            fallbacks=("gpt-4o-mini",),
        ),
        "gemini-flash": ModelEntry(
            provider="gemini", upstream="gemini-2.5-flash", context_window=1_000_000
        ),
    }
)


def load_catalogue(path: Path | None) -> Catalogue:
    """The operator's catalogue file, or the built-in one."""
    if path is None:
        return BUILT_IN
    with path.open("rb") as file:
        return Catalogue.model_validate(tomllib.load(file))
