"""Running a service: start, wait for SIGINT/SIGTERM, stop cleanly."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Protocol, TypeVar

from opentelemetry.sdk.trace import TracerProvider

from .logs import setup_logging
from .settings import ServiceSettings
from .telemetry import (
    create_tracer_provider,
    install_global_meter_provider,
    install_global_tracer_provider,
)


class Service(Protocol):
    """Anything with async `start` and `stop`."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


async def serve_until_signal(service: Service) -> None:
    """Start `service`, block until SIGINT or SIGTERM, then stop it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    try:
        await stop.wait()
    finally:
        await service.stop()


def run_service(
    name: str,
    settings: SettingsT,
    factory: Callable[[SettingsT, TracerProvider], Service],
) -> None:
    """The body of every service's console entry point."""
    setup_logging(settings.log_level, settings.log_format)
    provider = create_tracer_provider(name, settings)
    install_global_tracer_provider(provider)
    install_global_meter_provider(name, settings)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve_until_signal(factory(settings, provider)))
    finally:
        provider.shutdown()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (as uvicorn picks it for the gateway), else asyncio's.

    Every service spends much of its CPU in the event loop (a NATS message, a Postgres
    round trip and an HTTP chunk are each a few callbacks); uvloop runs them in C.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
