"""The whole chatbus system in the test's event loop, on real NATS and Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import uvicorn
from chatbus_cli.embedded import free_port
from chatbus_conversation.app import ConversationService
from chatbus_conversation.settings import ConversationSettings
from chatbus_embeddings.app import EmbeddingsService
from chatbus_embeddings.settings import EmbeddingsSettings
from chatbus_emulator.server import run_emulator
from chatbus_emulator.state import EmulatorState
from chatbus_gateway.app import create_app
from chatbus_gateway.limits import RoleLimits
from chatbus_gateway.settings import GatewaySettings
from chatbus_inference.app import InferenceService
from chatbus_inference.settings import InferenceSettings
from chatbus_usage.app import UsageService
from chatbus_usage.settings import UsageSettings
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .infra import Infra

JWT_SECRET = "test-secret-0123456789-abcdefghij"
MODEL = "gpt-4o-mini"
# Only users whose token carries one of these roles are limited (see test_rate_limits.py).
TEST_RATE_LIMITS = {
    "limited": RoleLimits(requests_per_minute=10),
    "frugal": RoleLimits(tokens_per_day=50),
}


@dataclass
class Stack:
    """Handles a test needs: URLs, the emulator's state, spans, SQL."""

    infra: Infra
    gateway_url: str
    emulator: EmulatorState
    spans: InMemorySpanExporter
    settings: GatewaySettings
    emulator_url: str
    services: list[Any]
    tracer_provider: TracerProvider

    @property
    def inference_settings(self) -> InferenceSettings:
        return next(s.settings for s in self.services if isinstance(s, InferenceService))

    @contextlib.asynccontextmanager
    async def without_inference(self) -> AsyncIterator[None]:
        """Stop the in-process inference replica (the test runs its own); a new one after."""
        index = next(i for i, s in enumerate(self.services) if isinstance(s, InferenceService))
        await self.services[index].stop()
        try:
            yield
        finally:
            replica = InferenceService(self.inference_settings, self.tracer_provider)
            self.services[index] = replica
            await replica.start()

    @contextlib.asynccontextmanager
    async def paused(self, service_type: type[Any]) -> AsyncIterator[None]:
        """Stop the in-process service of `service_type`; a fresh one starts after."""
        index = next(i for i, s in enumerate(self.services) if isinstance(s, service_type))
        service = self.services[index]
        await service.stop()
        try:
            yield
        finally:
            fresh = service_type(service.settings, self.tracer_provider)
            await fresh.start()
            self.services[index] = fresh

    @property
    def ws_url(self) -> str:
        return self.gateway_url.replace("http://", "ws://") + "/v1/ws"

    @contextlib.asynccontextmanager
    async def api(self, user: str) -> AsyncIterator[httpx.AsyncClient]:
        """An HTTP client of the gateway, signed in as `user`."""
        headers = {"Authorization": f"Bearer {self.token(user)}"}
        async with httpx.AsyncClient(base_url=self.gateway_url, headers=headers) as client:
            yield client

    def token(self, user: str, *, ttl_seconds: int = 3600, role: str = "user") -> str:
        now = int(time.time())
        claims = {"sub": user, "role": role, "iat": now, "exp": now + ttl_seconds}
        return jwt.encode(claims, JWT_SECRET, algorithm="HS256")

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        dsn = self.infra.database_url.replace("+asyncpg", "")
        connection = await asyncpg.connect(dsn)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    async def messages(self, conversation_id: uuid.UUID) -> list[asyncpg.Record]:
        """The conversation's stored messages (id, role, content), oldest first."""
        return await self.fetch(
            "SELECT id, role, content FROM conversation.messages WHERE conversation_id = $1 "
            "ORDER BY created_at",
            conversation_id,
        )

    async def wait_for(
        self, check: Callable[[], Awaitable[bool]], *, within_seconds: float = 30.0
    ) -> None:
        deadline = time.monotonic() + within_seconds
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def run_stack(infra: Infra) -> AsyncIterator[Stack]:
    """Start the emulator, the four backend services and the gateway; stop them after."""
    common = {"nats_url": infra.nats_url, "database_url": infra.database_url}
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    emulator = EmulatorState()
    async with run_emulator(emulator) as emulator_url:
        services: list[Any] = [
            ConversationService(ConversationSettings(**common), provider),
            UsageService(UsageSettings(**common), provider),
            EmbeddingsService(
                EmbeddingsSettings(
                    **common,
                    torch_threads=1,
                    # The openai backend's models are answered by the emulator.
                    OPENAI_API_KEY="emulator",
                    OPENAI_BASE_URL=f"{emulator_url}/v1",
                ),
                provider,
            ),
            InferenceService(
                InferenceSettings(
                    **common,
                    OPENAI_API_KEY="emulator",
                    OPENAI_BASE_URL=f"{emulator_url}/v1",
                    ANTHROPIC_API_KEY="emulator",
                    ANTHROPIC_BASE_URL=emulator_url,
                    default_model=MODEL,
                    # Titles by the demo provider, so provider calls in tests are the turns'.
                    title_model="demo",
                    retry_base_delay_seconds=0.05,
                    first_token_timeout_seconds=5,
                    idle_timeout_seconds=5,
                    # Generous: a loaded 2-core CI machine must not skip memory by timing.
                    memory_timeout_seconds=10,
                ),
                provider,
            ),
        ]
        for service in services:
            await service.start()
        try:
            async with run_gateway(infra, provider) as (url, settings):
                yield Stack(infra, url, emulator, spans, settings, emulator_url, services, provider)
        finally:
            for service in reversed(services):
                await service.stop()


@contextlib.asynccontextmanager
async def run_gateway(
    infra: Infra, tracer_provider: TracerProvider, port: int | None = None
) -> AsyncIterator[tuple[str, GatewaySettings]]:
    """A gateway process's app served by uvicorn on `port` (default: a free one).

    Yields (base URL, its settings). A fixed port lets a test restart "the same" gateway.
    """
    port = port or free_port()
    settings = GatewaySettings(
        nats_url=infra.nats_url,
        database_url=infra.database_url,
        jwt_secret=JWT_SECRET,
        gateway_port=port,
        auth_timeout_seconds=1.0,
        rate_limits=TEST_RATE_LIMITS,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, tracer_provider),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
        )
    )
    server_task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn only exposes a flag)
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        server.should_exit = True
        await server_task


# --- services as their own processes (for SIGKILL and SIGTERM) -----------------------


@dataclass
class ServiceProcess:
    """A chatbus console script running as a child process; its log in a file."""

    process: subprocess.Popen[bytes]
    log: Path

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def exited(self, within_seconds: float) -> int:
        """The exit code, once the process ended (AssertionError if it does not in time)."""
        deadline = time.monotonic() + within_seconds
        while (code := self.process.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {within_seconds} s")
            await asyncio.sleep(0.05)
        return code

    def stop(self) -> None:
        """Make sure it is gone (a test that failed half-way)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextlib.contextmanager
def service_process(
    stack: Stack, command: str, tmp_path: Path, **env: str
) -> Iterator[ServiceProcess]:
    """Run `command` (e.g. `chatbus-inference`) on the stack's NATS, Postgres and emulator.

    `env` adds `CHATBUS_*` variables (without the prefix, e.g. `DRAIN_SECONDS="1"`).
    """
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "CHATBUS_NATS_URL": stack.infra.nats_url,
        "CHATBUS_DATABASE_URL": stack.infra.database_url,
        "CHATBUS_JWT_SECRET": JWT_SECRET,
        "OPENAI_API_KEY": "emulator",
        "OPENAI_BASE_URL": f"{stack.emulator_url}/v1",
        "CHATBUS_DEFAULT_MODEL": MODEL,
        "CHATBUS_TITLE_MODEL": "demo",
        **{f"CHATBUS_{name.upper()}": value for name, value in env.items()},
    }
    log = tmp_path / f"{command}-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        executable = Path(sys.executable).parent / command
        process = subprocess.Popen(
            [str(executable)], env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    running = ServiceProcess(process, log)
    try:
        yield running
    finally:
        running.stop()


async def wait_until_serving(base_url: str, within_seconds: float = 30.0) -> None:
    """Poll a gateway's `/readyz` until it answers 200."""
    deadline = time.monotonic() + within_seconds
    async with httpx.AsyncClient(base_url=base_url) as http:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/readyz")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"{base_url} did not become ready")
            await asyncio.sleep(0.1)


def unique_user(name: str) -> str:
    """A user id no other test shares (`name` plus a random suffix)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"
