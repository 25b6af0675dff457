"""Settings of the `chatbus` command line: `CHATBUS_*` environment variables and `.env`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".chatbus")
DEFAULT_GATEWAY_PORT = 8000
DEFAULT_NATS_PORT = 4222
# The port the services' default CHATBUS_DATABASE_URL points at (chatbus_runtime.settings).
DEFAULT_POSTGRES_PORT = 55432


class CliSettings(BaseSettings):
    """What every `chatbus` command reads from the environment."""

    # An empty variable (`CHATBUS_NATS_URL=` in a shell or .env) means "not set": the dev
    # stack then starts its own server instead of handing the services an empty URL.
    model_config = SettingsConfigDict(
        env_prefix="CHATBUS_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    jwt_secret: SecretStr | None = None


class DevSettings(CliSettings):
    """`chatbus dev`: what is set here is used as is, what is not is started embedded."""

    nats_url: str | None = None
    database_url: str | None = None
    gateway_port: int = Field(default=DEFAULT_GATEWAY_PORT, ge=1, le=65535)
