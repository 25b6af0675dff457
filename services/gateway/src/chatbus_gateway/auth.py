"""JWT verification: the token's `sub` is the user id (the tenant)."""

from __future__ import annotations

import jwt


class InvalidToken(Exception):
    """A missing, malformed, badly signed or expired token."""


class TokenVerifier:
    """Verifies HS256 dev tokens signed with `CHATBUS_JWT_SECRET`."""

    def __init__(self, secret: str, algorithm: str = "HS256") -> None:
        self._secret = secret
        self._algorithm = algorithm

    def user_id(self, token: str) -> str:
        """The verified `sub` claim; raises `InvalidToken`."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[self._algorithm], options={"require": ["sub"]}
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from error
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("the token has no subject")
        return subject


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
