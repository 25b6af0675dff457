"""Console entry point: `chatbus-gateway`."""

from __future__ import annotations

import uvicorn
from chatbus_runtime.logs import setup_logging
from chatbus_runtime.telemetry import create_tracer_provider, install_global_tracer_provider

from .app import create_app
from .settings import GatewaySettings


def run() -> None:
    """Serve the gateway on `CHATBUS_GATEWAY_HOST:CHATBUS_GATEWAY_PORT` until SIGINT/SIGTERM."""
    settings = GatewaySettings()  # jwt_secret comes from the environment
    setup_logging(settings.log_level, settings.log_format)
    provider = create_tracer_provider("gateway", settings)
    install_global_tracer_provider(provider)
    try:
        uvicorn.run(
            create_app(settings, provider),
            host=settings.gateway_host,
            port=settings.gateway_port,
            log_config=None,
            ws_ping_interval=20,
        )
    finally:
        provider.shutdown()
