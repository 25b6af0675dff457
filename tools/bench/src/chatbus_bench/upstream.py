"""The provider emulator as the benchmark runs it: its own process, defaults settable live.

`python -m chatbus_bench.upstream --port N` serves `chatbus_emulator`'s app plus one
route, `POST /_bench/defaults`, which sets the reply and the delays every request gets.
The emulator's script queue is FIFO across all clients, so with two arms and many
concurrent turns a per-scenario default is the only way every request is answered
alike. `UpstreamControl` is the client side.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from chatbus_emulator.app import create_app
from chatbus_emulator.server import EmulatorServer, base_url, bind_socket
from chatbus_emulator.shutdown import ShutdownSignal
from chatbus_emulator.state import EmulatorState
from chatbus_emulator.tokens import filler_tokens
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from .samples import Expected

DEFAULTS_PATH = "/_bench/defaults"
MODEL = "gpt-4o-mini"
"""The model both arms ask for: chatbus's default model with an OpenAI key, sent upstream as is."""


@dataclass(frozen=True)
class Reply:
    """What the emulator answers every request with, and how fast."""

    tokens: int
    first_token_delay_ms: float = 0.0
    inter_token_delay_ms: float = 0.0

    @property
    def text(self) -> str:
        """The reply text: `tokens` filler words, one stream chunk each."""
        return "".join(filler_tokens(self.tokens))

    @property
    def expected(self) -> Expected:
        """What a client must receive."""
        return Expected(self.text, self.tokens)


def _defaults_route(state: EmulatorState) -> Route:
    async def set_defaults(request: Request) -> JSONResponse:
        data = await request.json()
        tokens = int(data["tokens"])
        first, inter = float(data["first_token_delay_ms"]), float(data["inter_token_delay_ms"])
        if tokens < 1 or first < 0 or inter < 0:
            return JSONResponse({"error": "tokens >= 1, delays >= 0"}, status_code=400)
        state.reply = Reply(tokens).text
        state.first_token_delay_ms = first
        state.inter_token_delay_ms = inter
        state.reset()  # the request log would otherwise grow for the whole run
        return JSONResponse({"ok": True})

    return Route(DEFAULTS_PATH, set_defaults, methods=["POST"])


def build_server(state: EmulatorState, log_level: str) -> EmulatorServer:
    """The emulator's app with the defaults route in front, served by its own server class."""
    shutdown = ShutdownSignal()
    emulator = create_app(state, shutdown=shutdown)
    app = Starlette(routes=[_defaults_route(state), Mount("/", app=emulator)])
    # As `chatbus-emulator` serves it, minus the access log (a line per request costs).
    config = uvicorn.Config(
        app, log_level=log_level, access_log=False, lifespan="off", timeout_graceful_shutdown=2
    )
    return EmulatorServer(config, shutdown, handle_signals=True)


def serve(argv: Sequence[str] | None = None) -> None:
    """Parse `argv`, bind, print the URL, serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m chatbus_bench.upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    server = build_server(EmulatorState(), args.log_level)
    sock = bind_socket(args.host, args.port)
    print(f"bench upstream listening on {base_url(sock)}", flush=True)
    server.run(sockets=[sock])


class UpstreamControl:
    """Sets the running emulator's reply for the next scenario."""

    def __init__(self, url: str) -> None:
        """`url` is the emulator's root, `http://127.0.0.1:PORT`."""
        self.url = url
        self._client = httpx.AsyncClient(base_url=url, trust_env=False, timeout=10.0)

    async def set_reply(self, reply: Reply) -> None:
        """Every request from now on gets `reply`; the request log is cleared."""
        response = await self._client.post(
            DEFAULTS_PATH,
            json={
                "tokens": reply.tokens,
                "first_token_delay_ms": reply.first_token_delay_ms,
                "inter_token_delay_ms": reply.inter_token_delay_ms,
            },
        )
        response.raise_for_status()

    async def requests(self) -> list[dict[str, Any]]:
        """The emulator's log of requests since the last `set_reply` (`GET /_emulator/requests`)."""
        response = await self._client.get("/_emulator/requests")
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()
        return records

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


if __name__ == "__main__":
    serve()
