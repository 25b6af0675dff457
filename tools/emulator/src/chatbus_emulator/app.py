"""The emulator's Starlette application."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from chatbus_emulator.anthropic_wire import AnthropicWire
from chatbus_emulator.completion import CompletionEndpoint
from chatbus_emulator.control import control_routes
from chatbus_emulator.delivery import install_cut_log_filter
from chatbus_emulator.embeddings import embeddings_route
from chatbus_emulator.models import models_route
from chatbus_emulator.openai_wire import OpenAIWire
from chatbus_emulator.shutdown import ShutdownSignal
from chatbus_emulator.state import EmulatorState


def create_app(
    state: EmulatorState | None = None, *, shutdown: ShutdownSignal | None = None
) -> Starlette:
    """Build the emulator app.

    ``state`` holds defaults, the script queue and the request log (a fresh one if omitted).
    Triggering ``shutdown`` ends in-flight responses at once; servers started through
    ``chatbus_emulator.server`` do that for you.
    """
    state = state if state is not None else EmulatorState()
    shutdown = shutdown if shutdown is not None else ShutdownSignal()
    install_cut_log_filter()
    routes = [
        Route(
            "/v1/chat/completions",
            CompletionEndpoint(OpenAIWire(), state, shutdown),
            methods=["POST"],
        ),
        Route(
            "/v1/messages", CompletionEndpoint(AnthropicWire(), state, shutdown), methods=["POST"]
        ),
        models_route(state),
        embeddings_route(),
        *control_routes(state),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = state
    return app
