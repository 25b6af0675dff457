"""Settings of the gateway."""

from __future__ import annotations

from decimal import Decimal

from chatbus_runtime.settings import ServiceSettings
from pydantic import Field, SecretStr

from .limits import RoleLimits


class GatewaySettings(ServiceSettings):
    """`CHATBUS_*` variables read by the gateway. `CHATBUS_JWT_SECRET` is required."""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=0, le=65535)
    jwt_secret: SecretStr = Field(min_length=16)
    jwt_algorithm: str = "HS256"
    max_content_bytes: int = Field(default=32 * 1024, ge=1)
    auth_timeout_seconds: float = 5.0
    query_timeout_seconds: float = 10.0
    embeddings_timeout_seconds: float = Field(
        default=60.0, gt=0, description="POST /v1/embeddings: one part's answer may take this long."
    )
    publish_timeout_seconds: float = 5.0
    drain_seconds: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, how long open streams keep relaying before their sockets "
        "are closed with 1012 (clients resume elsewhere).",
    )
    budgets: dict[str, Decimal] = Field(
        default_factory=dict,
        description="Monthly USD budget per role (the same CHATBUS_BUDGETS inference enforces).",
    )
    rate_limits: dict[str, RoleLimits] = Field(
        default_factory=dict,
        description='Per role, e.g. {"user": {"requests_per_minute": 20, "tokens_per_day": 200000}}'
        "; a role without an entry is unlimited.",
    )
