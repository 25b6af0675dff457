"""Dev JWTs (HS256) and the secret that signs them.

The secret is `CHATBUS_JWT_SECRET` when set, else the file `<data dir>/jwt-secret` that
`chatbus dev` creates on its first run, so tokens minted in another terminal are accepted
by the gateway it started.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from .settings import CliSettings

SECRET_FILE_NAME = "jwt-secret"
ALGORITHM = "HS256"
# The gateway refuses shorter secrets (GatewaySettings.jwt_secret).
MIN_SECRET_LENGTH = 16


class MissingSecretError(Exception):
    """Neither `CHATBUS_JWT_SECRET` nor the data dir's secret file exists."""


def secret_file(data_dir: Path) -> Path:
    """Where `chatbus dev` keeps the generated secret."""
    return data_dir / SECRET_FILE_NAME


def read_secret(settings: CliSettings, data_dir: Path) -> str:
    """The signing secret: the setting, else the data dir's file; raises MissingSecretError."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    path = secret_file(data_dir)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise MissingSecretError(
            f"no JWT secret: set CHATBUS_JWT_SECRET, or run `chatbus dev` once to create {path}"
        ) from None
    if not value:
        raise MissingSecretError(f"{path} is empty: delete it and run `chatbus dev` again")
    return value


def ensure_secret(settings: CliSettings, data_dir: Path) -> str:
    """The signing secret, creating the data dir's file (mode 0600) when there is none."""
    path = secret_file(data_dir)
    if settings.jwt_secret is not None or path.exists():
        return read_secret(settings, data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    try:
        # O_EXCL: two `chatbus dev` starting at once must not end up with different secrets.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_secret(settings, data_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value


def mint_token(
    secret: str,
    user: str,
    *,
    role: str = "user",
    ttl: timedelta = timedelta(hours=24),
    now: datetime | None = None,
) -> str:
    """An HS256 JWT with `sub`=user, `role`, `iat` and `exp` = iat + ttl."""
    issued = now or datetime.now(UTC)
    claims = {"sub": user, "role": role, "iat": issued, "exp": issued + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
