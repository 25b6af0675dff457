"""Settings of the inference service."""

from __future__ import annotations

from chatbus_runtime.settings import ServiceSettings
from pydantic import AliasChoices, Field, SecretStr


class InferenceSettings(ServiceSettings):
    """`CHATBUS_*` variables, plus the provider SDKs' own credential variables."""

    default_model: str | None = Field(
        default=None, description="Model used when a turn names none; None picks by provider keys."
    )
    max_concurrent_turns: int = Field(default=64, ge=1)
    history_timeout_seconds: float = 10.0
    demo_token_delay_ms: float = Field(default=15.0, ge=0)

    # The SDKs' own variables (read here so routing knows which providers are configured).
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "CHATBUS_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "CHATBUS_OPENAI_BASE_URL")
    )
    openai_default_model: str = "gpt-4o-mini"
