"""Settings of the inference service."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from chatbus_runtime.pricing import ModelPrice
from chatbus_runtime.settings import ServiceSettings
from pydantic import AliasChoices, Field, SecretStr

from .resilience import RetryPolicy, StreamTimeouts


def _sdk_variable(name: str) -> AliasChoices:
    # The SDKs' own variable first, a CHATBUS_-prefixed one as an alternative.
    return AliasChoices(name, f"CHATBUS_{name}")


class InferenceSettings(ServiceSettings):
    """`CHATBUS_*` variables, plus the provider SDKs' own credential variables."""

    default_model: str | None = Field(
        default=None, description="Model of a turn that names none; None picks by provider keys."
    )
    models_file: Path | None = Field(default=None, description="TOML model catalogue.")
    max_concurrent_turns: int = Field(default=64, ge=1)
    drain_seconds: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, how long running turns may finish before they are handed "
        "back to other replicas.",
    )
    history_timeout_seconds: float = 10.0
    title_model: str | None = Field(
        default=None, description="Model that titles new conversations; None: the turn's model."
    )
    title_timeout_seconds: float = Field(default=20.0, gt=0)
    memory_top_k: int = Field(default=3, ge=1, le=20, description="Retrieval memory: messages.")
    memory_min_similarity: float = Field(default=0.35, ge=-1, le=1)
    memory_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Without an answer by then, the turn goes on without."
    )
    demo_token_delay_ms: float = Field(default=15.0, ge=0)

    max_retries: int = Field(default=2, ge=0)
    retry_base_delay_seconds: float = Field(default=0.5, ge=0)
    retry_max_delay_seconds: float = Field(default=20.0, ge=0)
    first_token_timeout_seconds: float = Field(default=60.0, gt=0)
    idle_timeout_seconds: float = Field(default=60.0, gt=0)
    total_timeout_seconds: float = Field(default=600.0, gt=0)
    price_overrides: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description='USD per million tokens by upstream model name, e.g. {"llama3.1": '
        '{"input_per_mtok": "0.1", "output_per_mtok": "0.2"}}; wins over genai-prices.',
    )
    budgets: dict[str, Decimal] = Field(
        default_factory=dict,
        description='Monthly USD budget per role, e.g. {"user": "20"}; a role without one '
        "is unlimited unless an admin sets a user's own budget.",
    )

    # The SDKs' own variables; which are set decides which providers exist.
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=_sdk_variable("OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=_sdk_variable("OPENAI_BASE_URL")
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=_sdk_variable("ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=_sdk_variable("ANTHROPIC_BASE_URL")
    )
    gemini_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY", "CHATBUS_GEMINI_API_KEY"),
    )

    @property
    def retry_policy(self) -> RetryPolicy:
        """Retries of transient provider errors."""
        return RetryPolicy(
            self.max_retries, self.retry_base_delay_seconds, self.retry_max_delay_seconds
        )

    @property
    def stream_timeouts(self) -> StreamTimeouts:
        """Bounds on a provider stream."""
        return StreamTimeouts(
            self.first_token_timeout_seconds, self.idle_timeout_seconds, self.total_timeout_seconds
        )
