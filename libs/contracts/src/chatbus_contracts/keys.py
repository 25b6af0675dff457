"""API keys: `cb-<key id>_<secret>`, stored as a record whose secret is only a hash.

The record lives in the `api_keys` key-value bucket under its key id, so the gateway
finds it with one read and compares the SHA-256 of the presented secret (the secret is
32 random bytes, so a fast hash is enough). `chatbus keys` creates, lists and revokes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from pydantic import Field

from .common import Model

API_KEY_PREFIX = "cb-"
KEY_ID_LENGTH = 12


class ApiKeyRecord(Model):
    """What the bucket keeps of a key: never the key itself."""

    key_id: str = Field(min_length=KEY_ID_LENGTH, max_length=KEY_ID_LENGTH)
    user_id: str = Field(min_length=1)
    role: str = "user"
    name: str = ""
    secret_sha256: str
    created_at: datetime


def new_api_key() -> tuple[str, str, str]:
    """A fresh key: (the whole key to show once, its key id, the SHA-256 of its secret)."""
    key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
    secret = secrets.token_urlsafe(32)
    return f"{API_KEY_PREFIX}{key_id}_{secret}", key_id, hash_secret(secret)


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of a key's secret part."""
    return hashlib.sha256(secret.encode()).hexdigest()


def split_api_key(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a token shaped like an API key, else None."""
    if not token.startswith(API_KEY_PREFIX):
        return None
    body = token[len(API_KEY_PREFIX) :]
    key_id, separator = body[:KEY_ID_LENGTH], body[KEY_ID_LENGTH : KEY_ID_LENGTH + 1]
    secret = body[KEY_ID_LENGTH + 1 :]
    if separator != "_" or not secret or not all(c in "0123456789abcdef" for c in key_id):
        return None
    return key_id, secret


def secret_matches(record: ApiKeyRecord, secret: str) -> bool:
    """Whether `secret` is the one `record` was created with (constant-time compare)."""
    return hmac.compare_digest(record.secret_sha256, hash_secret(secret))
