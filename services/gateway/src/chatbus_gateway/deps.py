"""FastAPI dependencies: the gateway state and the authenticated user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, status

from .auth import InvalidToken, bearer_token
from .errors import ApiError
from .state import GatewayState


def get_state(request: Request) -> GatewayState:
    """The process's gateway state."""
    state: GatewayState = request.app.state.gateway
    return state


State = Annotated[GatewayState, Depends(get_state)]


def current_user(request: Request, state: State) -> str:
    """The verified user id of a REST call (`Authorization: Bearer <JWT>`)."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise ApiError(status.HTTP_401_UNAUTHORIZED, "unauthenticated", "missing bearer token")
    try:
        return state.verifier.user_id(token)
    except InvalidToken as error:
        raise ApiError(
            status.HTTP_401_UNAUTHORIZED, "unauthenticated", f"invalid token: {error}"
        ) from error


CurrentUser = Annotated[str, Depends(current_user)]
