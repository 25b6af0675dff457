"""Settings every chatbus service shares; each service subclasses `ServiceSettings`."""

from __future__ import annotations

from typing import Literal

from chatbus_contracts.streams import CHAT_REQUESTS
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The embedded Postgres that `chatbus dev` starts listens here (see docs/configuration.md).
EMBEDDED_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:55432/chatbus"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


class ServiceSettings(BaseSettings):
    """Read from `CHATBUS_*` environment variables and an optional `.env` file."""

    model_config = SettingsConfigDict(env_prefix="CHATBUS_", env_file=".env", extra="ignore")

    nats_url: str = DEFAULT_NATS_URL
    database_url: str = EMBEDDED_DATABASE_URL
    telemetry_exporter: Literal["none", "console", "otlp"] = "none"
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces endpoint; None uses OTEL_EXPORTER_OTLP_* ."
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    stream_replicas: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Replicas of every JetStream stream and key-value bucket (3 in a "
        "production cluster); applied when they are declared at start-up.",
    )
    requests_duplicate_window_seconds: float = Field(
        default=CHAT_REQUESTS.duplicate_window_seconds,
        gt=0,
        description="How long JetStream drops a resent chat.send by its Nats-Msg-Id "
        "(CHAT_REQUESTS); after it, the gateway's turn records still answer the resend.",
    )
    max_deliver: int | None = Field(
        default=None,
        ge=1,
        description="Deliveries before a message is dead-lettered, for every durable consumer "
        "of the service; None: each consumer's own (contracts, 10).",
    )
    redelivery_first_delay_seconds: float = Field(
        default=0.5, gt=0, description="Redelivery delay after a handler's first failure."
    )
    redelivery_max_delay_seconds: float = Field(
        default=30.0, gt=0, description="The redelivery delay doubles up to this."
    )
