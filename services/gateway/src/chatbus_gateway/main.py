"""Console entry point: `chatbus-gateway`."""

from __future__ import annotations

import sys

import uvicorn
from chatbus_runtime.logs import setup_logging
from chatbus_runtime.telemetry import create_tracer_provider, install_global_tracer_provider

from .app import create_app
from .drain import DrainingServer
from .settings import GatewaySettings


def run() -> None:
    """Serve the gateway on `CHATBUS_GATEWAY_HOST:CHATBUS_GATEWAY_PORT` until SIGINT/SIGTERM.

    SIGTERM drains first (`drain.py`): open streams go on for `CHATBUS_DRAIN_SECONDS`.
    """
    settings = GatewaySettings()  # jwt_secret comes from the environment
    setup_logging(settings.log_level, settings.log_format)
    provider = create_tracer_provider("gateway", settings)
    install_global_tracer_provider(provider)
    app = create_app(settings, provider)
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        ws_ping_interval=20,
        # Deltas are a few bytes: compression saves little and costs ~34 KiB of zlib
        # state per socket (docs/benchmarks.md).
        ws_per_message_deflate=False,
    )
    server = DrainingServer(config, app.state.gateway.drain, settings.drain_seconds)
    try:
        server.run()
    finally:
        provider.shutdown()
    if not server.started:
        sys.exit(3)  # as uvicorn.run does when start-up failed
