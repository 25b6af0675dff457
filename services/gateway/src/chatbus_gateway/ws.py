"""The WebSocket endpoint `/v1/ws`: authenticate, then hand the socket to a `ChatSession`."""

from __future__ import annotations

import asyncio

from chatbus_contracts.errors import CLOSE_TRY_AGAIN_LATER, CLOSE_UNAUTHENTICATED
from chatbus_contracts.ws import AuthFrame
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from .auth import CredentialStoreUnavailable, InvalidToken, bearer_token
from .session import ChatSession
from .state import GatewayState

router = APIRouter()


async def _first_frame_token(websocket: WebSocket, wait_seconds: float) -> str | None:
    """The token of a browser's first `auth` frame, if it comes in time and is one."""
    try:
        text = await asyncio.wait_for(websocket.receive_text(), wait_seconds)
        return AuthFrame.model_validate_json(text).token
    except (TimeoutError, ValidationError, WebSocketDisconnect):
        return None


@router.websocket("/v1/ws")
async def chat_socket(websocket: WebSocket) -> None:
    """Authenticate by header or first frame (close 4401 on failure), then serve frames."""
    state: GatewayState = websocket.app.state.gateway
    await websocket.accept()
    token = bearer_token(websocket.headers.get("authorization"))
    if token is None:
        token = await _first_frame_token(websocket, state.settings.auth_timeout_seconds)
    try:
        if token is None:
            raise InvalidToken("no token")
        identity = await state.authenticator.identity(token)
    except InvalidToken as error:
        await websocket.close(code=CLOSE_UNAUTHENTICATED, reason=str(error)[:120])
        return
    except CredentialStoreUnavailable:
        await websocket.close(code=CLOSE_TRY_AGAIN_LATER, reason="credentials could not be checked")
        return
    user_id = identity.user_id
    session = ChatSession(
        websocket,
        identity,
        state.acceptor,
        state.router,
        state.broker,
        state.resumer,
        state.tracer,
    )
    state.sockets.add(user_id, session)
    try:
        await session.run()
    finally:
        state.sockets.remove(user_id, session)
