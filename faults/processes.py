"""The whole chatbus system as real OS processes, with the handles to break it.

    nats-server (JetStream on disk)    EmbeddedNats, fixed port: a restart keeps it
    PostgreSQL 18 + pgvector           EmbeddedPostgres, fixed port and data dir
    chatbus-emulator x2                "a" serves inference-a, "b" serves inference-b, so
                                       a replica's live provider streams can be told apart
    chatbus-gateway x2, chatbus-inference x2, chatbus-conversation, chatbus-usage,
    chatbus-embeddings                 each its own process, as `chatbus dev` runs them

Every child is a `chatbus_cli.processes.ManagedChild`: its own process group and
PR_SET_PDEATHSIG, so nothing outlives the pytest process even if it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from chatbus_cli.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from chatbus_cli.processes import ManagedChild, script_path, wait_for_port
from chatbus_cli.tokens import mint_token

from .logs import RecordingPrinter

HOST = "127.0.0.1"
DATABASE = "chatbus_faults"
JWT_SECRET = "fault-suite-secret-0123456789abcdef"
MODEL = "gpt-4o-mini"
# Slow enough that a kill or a dropped socket lands mid-stream, fast enough for CI.
TOKEN_DELAY_MS = 60
READY_SECONDS = 120.0
STOP_SECONDS = 15.0

GATEWAYS = ("gateway-a", "gateway-b")
REPLICAS = ("inference-a", "inference-b")
CONSUMERS = ("conversation", "usage", "embeddings")
SERVICES = (*CONSUMERS, *REPLICAS, *GATEWAYS)

# The log line each backend service writes once it consumes; gateways answer /readyz.
_READY_MARKERS = {
    "conversation": "conversation service started",
    "usage": "usage service started",
    "embeddings": "embeddings service started",
    "inference": "inference started",
}
# Variables of the developer's shell that would reconfigure a child.
_FOREIGN_PREFIXES = ("CHATBUS_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_API_KEY", "PG")


def _script(name: str) -> str:
    """`gateway-a` → the `chatbus-gateway` console script."""
    return script_path(f"chatbus-{name.split('-')[0]}")


@dataclass
class Emulator:
    """One `chatbus-emulator` process and its base URL."""

    child: ManagedChild
    url: str


class System:
    """Starts, breaks and restarts the processes; `close()` ends every one of them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.printer = RecordingPrinter(root / "processes.log")
        self.nats = EmbeddedNats(root / "nats", port=free_port(HOST))
        self.postgres = EmbeddedPostgres(root / "postgres", port=free_port(HOST), fsync=False)
        self.gateway_ports = {name: free_port(HOST) for name in GATEWAYS}
        self.emulators: dict[str, Emulator] = {}
        self.services: dict[str, ManagedChild] = {}

    # --- start-up and shutdown -------------------------------------------------------

    async def start(self) -> None:
        """Everything, in dependency order; returns once every service serves."""
        await asyncio.to_thread(self.nats.start)
        await asyncio.to_thread(self.postgres.start)
        await asyncio.to_thread(self.postgres.ensure_database, DATABASE)
        for slot in ("a", "b"):
            self.emulators[slot] = await asyncio.to_thread(self._start_emulator, slot)
        # Conversation and usage first (inference queries the one, gateways read what the
        # other tallies); embeddings loads its model meanwhile, nothing waits for it.
        await asyncio.gather(*(self.start_service(name) for name in ("conversation", "usage")))
        rest = ("embeddings", *REPLICAS, *GATEWAYS)
        await asyncio.gather(*(self.start_service(name) for name in rest))

    def _start_emulator(self, slot: str) -> Emulator:
        port = free_port(HOST)
        argv = [script_path("chatbus-emulator"), "--host", HOST, "--port", str(port)]
        argv += ["--inter-token-delay-ms", str(TOKEN_DELAY_MS)]
        child = ManagedChild(f"emulator-{slot}", argv, printer=self.printer, cwd=self.root)
        if not wait_for_port(HOST, port, 30.0, lambda: child.poll() is None):
            raise RuntimeError(f"emulator-{slot} did not start:\n{self.tail(child.name)}")
        return Emulator(child, f"http://{HOST}:{port}")

    def close(self) -> None:
        """Stop every child (SIGTERM, then SIGKILL), the emulators, Postgres and NATS."""
        children = [*self.services.values(), *(e.child for e in self.emulators.values())]
        for child in children:
            child.terminate()
        for child in children:
            child.wait(STOP_SECONDS)
            child.join_output(2.0)
        self.postgres.stop()
        self.nats.stop()
        self.printer.close()

    # --- services ----------------------------------------------------------------------

    def env(self, name: str) -> dict[str, str]:
        """The environment of service `name`: the real settings, with short timeouts."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
        env.update(
            CHATBUS_NATS_URL=self.nats.url,
            CHATBUS_DATABASE_URL=self.postgres.url(DATABASE),
            CHATBUS_JWT_SECRET=JWT_SECRET,
            CHATBUS_LOG_LEVEL="INFO",
            # Recover within seconds once an outage ends, instead of up to 30 s later.
            CHATBUS_REDELIVERY_MAX_DELAY_SECONDS="8",
            CHATBUS_DRAIN_SECONDS="1",
        )
        kind = name.split("-")[0]
        if kind == "gateway":
            env["CHATBUS_GATEWAY_PORT"] = str(self.gateway_ports[name])
            env["CHATBUS_QUERY_TIMEOUT_SECONDS"] = "5"
        elif kind == "inference":
            emulator = self.emulators[name.split("-")[1]].url
            env.update(
                OPENAI_API_KEY="emulator",
                OPENAI_BASE_URL=f"{emulator}/v1",
                CHATBUS_DEFAULT_MODEL=MODEL,
                # Titles by the demo provider: every emulator request is a turn's answer.
                CHATBUS_TITLE_MODEL="demo",
                CHATBUS_RETRY_BASE_DELAY_SECONDS="0.2",
                CHATBUS_FIRST_TOKEN_TIMEOUT_SECONDS="20",
                CHATBUS_IDLE_TIMEOUT_SECONDS="20",
            )
        elif kind == "embeddings":
            env["CHATBUS_TORCH_THREADS"] = "1"
        return env

    async def start_service(self, name: str) -> None:
        """Start service `name` (again) and wait until it serves."""
        kind = name.split("-")[0]
        marker = _READY_MARKERS.get(kind)
        before = self.printer.count(name, marker) if marker else 0
        child = ManagedChild(
            name, [_script(name)], printer=self.printer, env=self.env(name), cwd=self.root
        )
        self.services[name] = child
        deadline = time.monotonic() + READY_SECONDS
        while not await self._serves(name, marker, before):
            if child.poll() is not None:
                raise RuntimeError(f"{name} exited during start-up:\n{self.tail(name)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready in {READY_SECONDS} s:\n{self.tail(name)}")
            await asyncio.sleep(0.2)

    async def _serves(self, name: str, marker: str | None, before: int) -> bool:
        if marker is not None:
            return self.printer.count(name, marker) > before
        async with httpx.AsyncClient(base_url=self.http_url(name), timeout=2.0) as http:
            with contextlib.suppress(httpx.HTTPError):
                return (await http.get("/readyz")).status_code == 200
        return False

    async def kill(self, name: str) -> None:
        """`kill -9` service `name`, as a crash would."""
        child = self.services[name]
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        await asyncio.to_thread(child.wait, STOP_SECONDS)

    async def stop(self, name: str) -> int | None:
        """SIGTERM service `name` and wait for it to exit (SIGKILL after a while)."""
        child = self.services[name]
        child.terminate()
        return await asyncio.to_thread(child.wait, STOP_SECONDS)

    def running(self, name: str) -> bool:
        """Whether service `name` is alive."""
        return name in self.services and self.services[name].poll() is None

    async def heal(self) -> list[str]:
        """Bring back whatever is down (after a failed scenario); the names restarted."""
        healed = []
        if not self.nats.is_running():
            await asyncio.to_thread(self.nats.start)
            healed.append("nats-server")
        if not self.postgres.is_running():
            await asyncio.to_thread(self.postgres.start)
            healed.append("postgres")
        for name in SERVICES:
            if not self.running(name):
                await self.start_service(name)
                healed.append(name)
        return healed

    # --- addresses and helpers ---------------------------------------------------------

    def http_url(self, gateway: str) -> str:
        """`http://127.0.0.1:PORT` of a gateway."""
        return f"http://{HOST}:{self.gateway_ports[gateway]}"

    def ws_url(self, gateway: str) -> str:
        """The WebSocket endpoint of a gateway."""
        return f"ws://{HOST}:{self.gateway_ports[gateway]}/v1/ws"

    @property
    def dsn(self) -> str:
        """The database for asyncpg."""
        return self.postgres.url(DATABASE).replace("+asyncpg", "")

    def token(self, user: str) -> str:
        """A JWT for `user`, as `chatbus token` mints it."""
        return mint_token(JWT_SECRET, user)

    def tail(self, name: str) -> str:
        """The last lines a child wrote."""
        return self.printer.tail(name)

    async def emulator_requests(self, slot: str) -> list[dict[str, Any]]:
        """Every completion request emulator `slot` received since its last reset."""
        async with httpx.AsyncClient(base_url=self.emulators[slot].url, timeout=10.0) as http:
            response = await http.get("/_emulator/requests")
            response.raise_for_status()
            records: list[dict[str, Any]] = response.json()
            return records

    async def live_stream(
        self, slots: tuple[str, ...] = ("a", "b"), *, min_tokens: int = 3, within_seconds: float
    ) -> tuple[str, dict[str, Any]]:
        """(slot, request) of a provider stream an emulator is sending right now."""
        deadline = time.monotonic() + within_seconds
        while time.monotonic() < deadline:
            for slot in slots:
                for record in reversed(await self.emulator_requests(slot)):
                    if record["outcome"] == "pending" and record["tokens_sent"] >= min_tokens:
                        return slot, dict(record)
            await asyncio.sleep(0.1)
        raise AssertionError(f"emulators {slots} streamed nothing for {within_seconds} s")

    async def stream_cut(self, slot: str, request: int, within_seconds: float = 10.0) -> bool:
        """Whether emulator `slot` saw the client of `request` go away mid-stream."""
        deadline = time.monotonic() + within_seconds
        while time.monotonic() < deadline:
            records = {r["id"]: r for r in await self.emulator_requests(slot)}
            if records[request]["outcome"] == "disconnected":
                return True
            await asyncio.sleep(0.1)
        return False

    async def reset_emulators(self) -> None:
        """Forget the requests recorded so far (each scenario counts its own)."""
        async with httpx.AsyncClient(timeout=10.0) as http:
            for emulator in self.emulators.values():
                (await http.post(f"{emulator.url}/_emulator/reset")).raise_for_status()


@contextlib.contextmanager
def closing(system: System) -> Iterator[System]:
    """`system`, closed on the way out whatever happened."""
    try:
        yield system
    finally:
        system.close()
