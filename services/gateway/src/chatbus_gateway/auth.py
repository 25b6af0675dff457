"""Who is calling: a JWT (`sub` = user id, `role` claim) or a chatbus API key (`cb-…`)."""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from chatbus_contracts.keys import API_KEY_PREFIX, ApiKeyRecord, secret_matches, split_api_key
from chatbus_contracts.streams import API_KEYS
from chatbus_runtime.bus import Bucket
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError

DEFAULT_ROLE = "user"


class InvalidToken(Exception):
    """A missing, malformed, badly signed, expired, unknown or revoked credential."""


class CredentialStoreUnavailable(Exception):
    """The API key bucket could not be read; the caller may retry."""


@dataclass(frozen=True)
class Identity:
    """A verified caller: the user id (the tenant) and their role (`user`, `admin`, …)."""

    user_id: str
    role: str = DEFAULT_ROLE

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class TokenVerifier:
    """Verifies HS256 dev tokens signed with `CHATBUS_JWT_SECRET`."""

    def __init__(self, secret: str, algorithm: str = "HS256") -> None:
        self._secret = secret
        self._algorithm = algorithm

    def identity(self, token: str) -> Identity:
        """The verified `sub` and `role` claims; raises `InvalidToken`."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[self._algorithm], options={"require": ["sub"]}
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from error
        subject, role = claims.get("sub"), claims.get("role", DEFAULT_ROLE)
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("the token has no subject")
        if not isinstance(role, str) or not role:
            raise InvalidToken("the token's role claim is not a string")
        return Identity(subject, role)


class ApiKeyVerifier:
    """Looks API keys up in the `api_keys` bucket (one read; revocation takes effect at once)."""

    def __init__(self, broker: NatsBroker) -> None:
        self._bucket = Bucket(broker, API_KEYS)

    async def identity(self, key_id: str, secret: str) -> Identity:
        """The owner of the key; raises `InvalidToken` or `CredentialStoreUnavailable`."""
        try:
            entry = await (await self._bucket.kv()).get(key_id)
        except KeyNotFoundError:
            raise InvalidToken("unknown or revoked API key") from None
        except (NatsError, TimeoutError) as error:
            raise CredentialStoreUnavailable(str(error)) from error
        record = ApiKeyRecord.model_validate_json(entry.value or b"")
        if not secret_matches(record, secret):
            raise InvalidToken("unknown or revoked API key")
        return Identity(record.user_id, record.role)


class Authenticator:
    """Verifies a bearer credential of either kind."""

    def __init__(self, tokens: TokenVerifier, keys: ApiKeyVerifier) -> None:
        self._tokens = tokens
        self._keys = keys

    async def identity(self, credential: str) -> Identity:
        """Who `credential` belongs to; raises `InvalidToken` or `CredentialStoreUnavailable`."""
        if not credential.startswith(API_KEY_PREFIX):
            return self._tokens.identity(credential)
        api_key = split_api_key(credential)
        if api_key is None:
            raise InvalidToken("malformed API key")
        return await self._keys.identity(*api_key)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
