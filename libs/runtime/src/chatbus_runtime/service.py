"""Running a service: start, wait for SIGINT/SIGTERM, stop cleanly."""

from __future__ import annotations

import asyncio
import gc
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
    tune_garbage_collector()
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


def tune_garbage_collector() -> None:
    """Once started: freeze the start-up heap and collect young objects less often.

    What start-up leaves (modules, the SDKs, the price table, pydantic and SQLAlchemy
    schemas) lives as long as the process, yet every full collection walked all of it;
    frozen, collections walk only what handling made since. Almost everything handling
    makes is freed by reference counting: net allocations seldom pile up to
    `YOUNG_COLLECTION_THRESHOLD` before they fall again, while Python's default of 700
    ran a young collection every few turns. Measured at 110 turns/s over 32 s: inference
    and conversation each stopped for full collections of up to 210-330 ms (every stream
    inference relayed stalling with it) and ran 400-1,350 young ones; after, 2 young
    collections of at most 13 ms each (docs/decisions.md).
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, oldest)


# Net allocations of tracked objects between young collections (Python's default: 700).
YOUNG_COLLECTION_THRESHOLD = 10_000


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
