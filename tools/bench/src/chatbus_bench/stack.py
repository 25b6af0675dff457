"""The system under test: NATS, Postgres, the emulator and the services, as `chatbus dev` runs them.

Reuses `chatbus_cli`'s embedded servers and child processes (each in its own process
group, killed with us), in a fresh data directory per run, so every run starts from
empty streams and tables. Two differences from `chatbus dev`, both recorded in the
results: the upstream is the benchmark's emulator (`upstream.py`), and the services get
`BENCH_ENV` below. The embeddings service starts only when asked (`start_embeddings`):
its model would otherwise share the CPU with the relay being measured.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx
from chatbus_cli.dev import DATABASE, PROVIDER_VARIABLES, Provider, service_env
from chatbus_cli.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from chatbus_cli.processes import ManagedChild, OutputPrinter, script_path, stop_all, wait_for_port
from chatbus_cli.tokens import mint_token

HOST = "127.0.0.1"
BACKEND = ("conversation", "usage", "inference", "gateway")
EMBEDDINGS = "embeddings"
STOP_TIMEOUT = 10.0

BENCH_ENV: dict[str, str] = {
    # Titles come from the demo provider (the first words, no upstream call), so the
    # emulator sees exactly one request per turn in both arms.
    "CHATBUS_TITLE_MODEL": "demo",
    # The default (64) would queue the 200- and 500-stream scenarios inside inference.
    "CHATBUS_MAX_CONCURRENT_TURNS": "1024",
}


class StackError(RuntimeError):
    """The stack did not come up; the message says which part and where its log is."""


@dataclass(frozen=True)
class Endpoints:
    """Where the running parts listen."""

    gateway_url: str
    nats_url: str
    database_url: str
    """asyncpg form: `postgresql://postgres@127.0.0.1:PORT/chatbus`."""
    emulator_url: str

    @property
    def ws_url(self) -> str:
        """The gateway's WebSocket endpoint."""
        return self.gateway_url.replace("http://", "ws://") + "/v1/ws"

    def port_roles(self) -> dict[int, str]:
        """Listening port -> role, to name the hops of a TCP connection."""
        roles = {}
        for url, role in (
            (self.gateway_url, "gateway"),
            (self.nats_url, "nats-server"),
            (self.database_url, "postgres"),
            (self.emulator_url, "emulator"),
        ):
            roles[httpx.URL(url.replace("nats://", "http://")).port or 0] = role
        return roles


def _hermetic_env() -> dict[str, str]:
    """Our environment without CHATBUS_* and provider settings: the run is the same anywhere."""
    drop = set(PROVIDER_VARIABLES)
    return {k: v for k, v in os.environ.items() if not k.startswith("CHATBUS_") and k not in drop}


class BenchStack:
    """Start with `start()`, stop with `stop()` (also on failure); one run only."""

    def __init__(self, run_dir: Path, log: TextIO) -> None:
        """`run_dir` holds the data; every child's output goes to `log`, prefixed."""
        self.run_dir = run_dir
        self.printer = OutputPrinter(stream=log)
        self.jwt_secret = os.urandom(24).hex()
        self.gateway_port = free_port(HOST)
        self._nats = EmbeddedNats(run_dir / "nats")
        self._postgres = EmbeddedPostgres(run_dir / "postgres")
        self._children: dict[str, ManagedChild] = {}
        self._env: dict[str, str] = {}
        self._cleanup = contextlib.ExitStack()
        self.endpoints: Endpoints | None = None

    def start(self, ready_timeout: float = 180.0) -> Endpoints:
        """NATS, Postgres, the emulator and the backend services; wait until the gateway serves."""
        try:
            return self._start(ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, ready_timeout: float) -> Endpoints:
        self._nats.start()
        self._cleanup.callback(self._nats.stop)
        self._postgres.start()
        self._cleanup.callback(self._postgres.stop)
        self._postgres.ensure_database(DATABASE)
        emulator_url = self._start_emulator()
        self._env = service_env(
            _hermetic_env(),
            provider=Provider.EMULATOR,
            nats_url=self._nats.url,
            database_url=self._postgres.url(DATABASE),
            jwt_secret=self.jwt_secret,
            gateway_port=self.gateway_port,
            emulator_url=emulator_url,
        )
        self._env.update(BENCH_ENV)
        for name in BACKEND:
            self._spawn_service(name)
        self.endpoints = Endpoints(
            gateway_url=f"http://{HOST}:{self.gateway_port}",
            nats_url=self._nats.url,
            database_url=self._postgres.url(DATABASE).replace("+asyncpg", ""),
            emulator_url=emulator_url,
        )
        self._wait_ready(self.endpoints.gateway_url, ready_timeout)
        return self.endpoints

    def _start_emulator(self) -> str:
        port = free_port(HOST)
        argv = [sys.executable, "-m", "chatbus_bench.upstream", "--host", HOST, "--port", str(port)]
        child = ManagedChild("emulator", argv, printer=self.printer, cwd=self.run_dir)
        self._children["emulator"] = child
        self._cleanup.callback(child.stop, STOP_TIMEOUT)
        if not wait_for_port(HOST, port, 30.0, lambda: child.poll() is None):
            raise StackError("the emulator did not start")
        return f"http://{HOST}:{port}"

    def _spawn_service(self, name: str) -> ManagedChild:
        # cwd is the run directory, so a developer's .env cannot change the run.
        child = ManagedChild(
            name,
            [script_path(f"chatbus-{name}")],
            printer=self.printer,
            env=self._env,
            cwd=self.run_dir,
        )
        self._children[name] = child
        return child

    def start_embeddings(self) -> None:
        """Start the embeddings service (it consumes the EVENTS backlog from the beginning)."""
        if EMBEDDINGS not in self._children:
            self._spawn_service(EMBEDDINGS)

    def token(self, user: str) -> str:
        """A dev JWT for `user`, signed with this stack's secret (as `chatbus token` mints)."""
        return mint_token(self.jwt_secret, user)

    def pids(self) -> dict[str, int]:
        """Pid per running part: services, emulator, nats-server, postgres (the postmaster)."""
        pids = {name: child.pid for name, child in self._children.items() if child.poll() is None}
        if self._nats.pid is not None:
            pids["nats-server"] = self._nats.pid
        if self._postgres.pid is not None:
            pids["postgres"] = self._postgres.pid
        return pids

    def exited(self) -> list[str]:
        """Children that are no longer running."""
        return [name for name, child in self._children.items() if child.poll() is not None]

    def _wait_ready(self, gateway_url: str, timeout: float) -> None:
        """The gateway's /readyz, then a REST call to conversation and one to inference."""
        headers = {"Authorization": f"Bearer {self.token('bench-probe')}"}
        pending = ["/readyz", "/v1/conversations?limit=1", "/v1/models"]
        deadline = time.monotonic() + timeout
        last = ""
        with httpx.Client(base_url=gateway_url, trust_env=False, timeout=5.0) as client:
            while pending:
                gone = self.exited()
                if gone:
                    raise StackError(f"{', '.join(gone)} exited during startup")
                if time.monotonic() > deadline:
                    raise StackError(f"not ready within {timeout:.0f}s: {last}")
                try:
                    status = client.get(pending[0], headers=headers).status_code
                except httpx.HTTPError as error:
                    status, last = 0, f"{pending[0]}: {error!r}"
                if status == 200:
                    pending.pop(0)
                    continue
                last = last if status == 0 else f"{pending[0]} answers {status}"
                time.sleep(0.25)

    def stop(self) -> None:
        """Services first (all at once), then the emulator, Postgres and NATS; idempotent."""
        services = [child for name, child in self._children.items() if name != "emulator"]
        stop_all(services, STOP_TIMEOUT)
        self._cleanup.close()
