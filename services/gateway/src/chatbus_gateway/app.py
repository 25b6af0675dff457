"""The gateway's whole wiring: FastAPI app, routes, and the broker's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chatbus_runtime.bus import start_broker
from fastapi import FastAPI, WebSocket
from opentelemetry.sdk.trace import TracerProvider
from starlette.types import Receive, Scope, Send

from . import (
    budgets_api,
    conversations_api,
    embeddings_api,
    openai_api,
    rest,
    search_api,
    usage_api,
    ws,
)
from .errors import install_error_handlers
from .settings import GatewaySettings
from .state import build_state, listen


class GatewayApp(FastAPI):
    """FastAPI, except that chat sockets skip the middleware stack.

    An idle socket would otherwise hold a connection span, exit stacks and a frame per
    middleware for its whole life (~23 KiB of its ~44 KiB, docs/decisions.md); turns
    have their own spans (session.py).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == ws.PATH:
            scope["app"] = self
            await ws.chat_socket(WebSocket(scope, receive, send))
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: GatewaySettings, tracer_provider: TracerProvider) -> FastAPI:
    """A gateway app; NATS connects when the app starts and drains when it stops."""
    state = build_state(settings, tracer_provider)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await start_broker(state.broker)
        await listen(state)
        try:
            yield
        finally:
            await state.broker.stop()

    app = GatewayApp(
        title="chatbus gateway",
        version="0.1.0",
        description="WebSocket chat (`/v1/ws`, protocol v1) and REST over chatbus.",
        lifespan=lifespan,
    )
    app.state.gateway = state
    install_error_handlers(app)
    app.include_router(rest.router)
    app.include_router(conversations_api.router)
    app.include_router(openai_api.router)
    app.include_router(embeddings_api.router)
    app.include_router(search_api.router)
    app.include_router(budgets_api.router)
    app.include_router(usage_api.router)
    app.include_router(ws.router)
    return app
