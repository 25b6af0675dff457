"""Serving the emulator with uvicorn, standalone or inside a running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

from chatbus_emulator.app import create_app
from chatbus_emulator.shutdown import ShutdownSignal
from chatbus_emulator.state import EmulatorState

_STARTUP_POLL_S = 0.005


class EmulatorServer(uvicorn.Server):
    """uvicorn server that ends stalled and slow responses as soon as it shuts down."""

    def __init__(
        self, config: uvicorn.Config, streams_stop: ShutdownSignal, *, handle_signals: bool = True
    ) -> None:
        """``streams_stop`` must be the signal the app was created with."""
        super().__init__(config)
        self._streams_stop = streams_stop
        self._handle_signals = handle_signals

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Release in-flight responses first, so graceful shutdown has nothing to wait for."""
        self._streams_stop.trigger()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install uvicorn's signal handlers only when this server owns the process."""
        if self._handle_signals:
            with super().capture_signals():
                yield
        else:
            yield


def bind_socket(host: str, port: int) -> socket.socket:
    """Listen on ``host:port`` (``port=0`` picks a free port) before the server starts."""
    return socket.create_server((host, port))


def base_url(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket, with IPv6 hosts bracketed."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(
    state: EmulatorState, *, handle_signals: bool, log_config: Any, log_level: str | None
) -> EmulatorServer:
    """An ``EmulatorServer`` serving a fresh app over ``state``."""
    streams_stop = ShutdownSignal()
    config = uvicorn.Config(
        create_app(state, shutdown=streams_stop),
        log_config=log_config,
        log_level=log_level,
        lifespan="off",
        # Backstop only: the shutdown signal normally ends every response immediately.
        timeout_graceful_shutdown=2,
    )
    return EmulatorServer(config, streams_stop, handle_signals=handle_signals)


@contextlib.asynccontextmanager
async def run_emulator(
    state: EmulatorState | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve the emulator in the current event loop; yield its base URL.

    ``http://127.0.0.1:PORT``: point the OpenAI SDK at ``f"{url}/v1"`` and the Anthropic
    SDK at ``url``. Leaves logging configuration and signal handlers alone.
    """
    state = state if state is not None else EmulatorState()
    # The caller owns logging and signals; uvicorn must not reconfigure either.
    server = make_server(state, handle_signals=False, log_config=None, log_level=None)
    sock = bind_socket(host, port)
    url = base_url(sock)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                raise RuntimeError(f"emulator failed to start on {url}") from _failure(task)
            await asyncio.sleep(_STARTUP_POLL_S)
        yield url
    finally:
        server.should_exit = True
        await task
        sock.close()


def _failure(task: asyncio.Task[None]) -> BaseException | None:
    # uvicorn reports startup failures with sys.exit, which surfaces as SystemExit.
    if task.cancelled():
        return None
    return task.exception()
