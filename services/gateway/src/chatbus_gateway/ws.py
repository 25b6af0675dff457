"""The WebSocket endpoint `/v1/ws`: authenticate, then hand the socket to a `ChatSession`.

A draining gateway (drain.py) refuses the upgrade with HTTP 503, so a reconnecting
client backs off and tries again, reaching another replica.
"""

from __future__ import annotations

import asyncio

from chatbus_contracts.errors import (
    CLOSE_SERVICE_RESTART,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHENTICATED,
)
from chatbus_contracts.ws import AuthFrame
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from .auth import CredentialStoreUnavailable, InvalidToken, bearer_token
from .session import ChatSession
from .state import GatewayState
from .stopping import Stopper

router = APIRouter()
PATH = "/v1/ws"
# How long a `chat.stop` waits for the replica that streams the turn to answer.
STOP_TIMEOUT_SECONDS = 2.0


async def _first_frame_token(websocket: WebSocket, wait_seconds: float) -> str | None:
    """The token of a browser's first `auth` frame, if it comes in time and is one."""
    try:
        text = await asyncio.wait_for(websocket.receive_text(), wait_seconds)
        return AuthFrame.model_validate_json(text).token
    except (TimeoutError, ValidationError, WebSocketDisconnect):
        return None


@router.websocket(PATH)
async def chat_socket(websocket: WebSocket) -> None:
    """Authenticate by header or first frame (close 4401 on failure), then serve frames."""
    state: GatewayState = websocket.app.state.gateway
    if state.drain.draining:
        await _refuse_draining(websocket)
        return
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
        Stopper(state.broker, state.records, STOP_TIMEOUT_SECONDS),
        state.drain,
    )
    state.sockets.add(user_id, session)
    state.drain.add(session)
    try:
        await session.run()
    finally:
        state.sockets.remove(user_id, session)
        state.drain.discard(session)


async def _refuse_draining(websocket: WebSocket) -> None:
    """HTTP 503 instead of the upgrade (a close before accept where the server cannot)."""
    body = {"error": {"code": "unavailable", "message": "the gateway is shutting down"}}
    try:
        await websocket.send_denial_response(
            JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
        )
    except RuntimeError:  # no denial-response extension
        await websocket.close(code=CLOSE_SERVICE_RESTART)
