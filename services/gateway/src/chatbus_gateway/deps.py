"""FastAPI dependencies: the gateway state and the authenticated user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, status

from .auth import CredentialStoreUnavailable, Identity, InvalidToken, bearer_token
from .errors import ApiError
from .state import GatewayState


def get_state(request: Request) -> GatewayState:
    """The process's gateway state."""
    state: GatewayState = request.app.state.gateway
    return state


State = Annotated[GatewayState, Depends(get_state)]


async def current_identity(request: Request, state: State) -> Identity:
    """The verified caller of a REST call (`Authorization: Bearer <JWT or API key>`)."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise ApiError(status.HTTP_401_UNAUTHORIZED, "unauthenticated", "missing bearer token")
    try:
        return await state.authenticator.identity(token)
    except InvalidToken as error:
        raise ApiError(
            status.HTTP_401_UNAUTHORIZED, "unauthenticated", f"invalid credential: {error}"
        ) from error
    except CredentialStoreUnavailable as error:
        raise ApiError(
            status.HTTP_503_SERVICE_UNAVAILABLE, "unavailable", "credentials could not be checked"
        ) from error


CurrentIdentity = Annotated[Identity, Depends(current_identity)]


def current_user(identity: CurrentIdentity) -> str:
    """The verified user id of a REST call."""
    return identity.user_id


CurrentUser = Annotated[str, Depends(current_user)]


def current_admin(identity: CurrentIdentity) -> Identity:
    """The caller, who must have the `admin` role (403 otherwise)."""
    if not identity.is_admin:
        raise ApiError(status.HTTP_403_FORBIDDEN, "forbidden", "this route needs the admin role")
    return identity


CurrentAdmin = Annotated[Identity, Depends(current_admin)]
