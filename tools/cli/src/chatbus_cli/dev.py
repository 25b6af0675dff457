"""`chatbus dev`: NATS, Postgres, the five services (and optionally the emulator) on one machine.

Start order: secret, NATS, Postgres, emulator, services; then wait for the gateway's
`/readyz`. Everything started is stopped in the reverse order on Ctrl-C/SIGTERM, when a
service exits on its own, or when startup fails.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from .embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    EmbeddedServiceError,
    free_port,
    reserve_port,
)
from .processes import (
    ManagedChild,
    OutputPrinter,
    describe_exit,
    script_path,
    stop_all,
    wait_for_port,
)
from .settings import DEFAULT_DATA_DIR, DEFAULT_NATS_PORT, DEFAULT_POSTGRES_PORT, DevSettings
from .tokens import MIN_SECRET_LENGTH, ensure_secret, mint_token

SERVICES = ("conversation", "usage", "embeddings", "inference", "gateway")
DATABASE = "chatbus"
READY_BANNER = "chatbus is ready"
BANNER_END = "Ctrl-C stops everything."
_HOST = "127.0.0.1"
_ME = "chatbus"
_STOP_TIMEOUT = 10.0
_EMULATOR_TIMEOUT = 30.0
# The provider SDKs' own credential variables, which the inference service reads to decide which
# providers exist, and its CHATBUS_-prefixed alternatives.
_SDK_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
)
PROVIDER_VARIABLES = (*_SDK_VARIABLES, *(f"CHATBUS_{name}" for name in _SDK_VARIABLES))


class Provider(StrEnum):
    """Which model provider the inference service gets."""

    AUTO = "auto"
    DEMO = "demo"
    EMULATOR = "emulator"


class StartupError(Exception):
    """Something could not be started; the message says what and how to fix it."""


@dataclass(frozen=True)
class DevOptions:
    """The command line of `chatbus dev`."""

    provider: Provider = Provider.AUTO
    data_dir: Path = DEFAULT_DATA_DIR
    gateway_port: int | None = None
    nats_port: int = DEFAULT_NATS_PORT
    postgres_port: int = DEFAULT_POSTGRES_PORT
    ready_timeout: float = 120.0
    # JetStream fsyncs at least this often: an OS crash or power loss loses at most this
    # much acknowledged data (nats-server's own default is 2 minutes).
    nats_sync_interval: str = "1s"


def service_env(
    base: Mapping[str, str],
    *,
    provider: Provider,
    nats_url: str,
    database_url: str,
    jwt_secret: str,
    gateway_port: int,
    emulator_url: str | None = None,
) -> dict[str, str]:
    """The environment of every service: `base` plus what the dev stack decided.

    `emulator_url` is the emulator's root URL (`http://127.0.0.1:PORT`), for `Provider.EMULATOR`.
    """
    env = dict(base)
    env.update(
        CHATBUS_NATS_URL=nats_url,
        CHATBUS_DATABASE_URL=database_url,
        CHATBUS_JWT_SECRET=jwt_secret,
        CHATBUS_GATEWAY_PORT=str(gateway_port),
    )
    if provider is Provider.AUTO:
        return env
    # Neither demo nor emulator may reach a real provider with the developer's keys.
    for name in PROVIDER_VARIABLES:
        env.pop(name, None)
    if provider is Provider.DEMO:
        # A key in the services' .env would still configure a provider; this keeps turns that
        # name no model on the demo provider regardless.
        env["CHATBUS_DEFAULT_MODEL"] = "demo"
    else:
        if emulator_url is None:
            raise ValueError("the emulator provider needs emulator_url")
        # The emulator speaks both the OpenAI and the Anthropic wire format (so fallbacks
        # between the two can be tried out); each SDK wants its own base URL shape.
        env.update(
            OPENAI_BASE_URL=f"{emulator_url}/v1",
            OPENAI_API_KEY="emulator",
            ANTHROPIC_BASE_URL=emulator_url,
            ANTHROPIC_API_KEY="emulator",
        )
    return env


class _StopSignal:
    """SIGINT/SIGTERM set an event instead of raising, so every stop runs the same cleanup."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: str | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name
        self.event.set()

    def __enter__(self) -> _StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class DevStack:
    """One run of `chatbus dev`."""

    def __init__(
        self,
        options: DevOptions,
        settings: DevSettings | None = None,
        printer: OutputPrinter | None = None,
    ) -> None:
        """Nothing starts until `run()`."""
        self.options = options
        self.settings = settings or DevSettings()
        self.printer = printer or OutputPrinter()
        self.data_dir = options.data_dir.expanduser().resolve()
        self.gateway_port = options.gateway_port or self.settings.gateway_port
        reserve_port(self.gateway_port)  # bound last: no port picked before may take it
        self.services: list[ManagedChild] = []
        self._watched: list[tuple[str, ManagedChild | EmbeddedNats | EmbeddedPostgres]] = []
        self._stop = _StopSignal()

    def say(self, text: str) -> None:
        """A line from `chatbus dev` itself, under its own prefix."""
        self.printer.lines(_ME, [text], colour=typer.colors.WHITE, bold=True)

    def run(self) -> int:
        """Start everything, serve until a signal or a failure, stop everything; exit code."""
        with self._stop, contextlib.ExitStack() as cleanup:
            try:
                code = self._run(cleanup)
            except (StartupError, EmbeddedServiceError, FileNotFoundError) as error:
                self.say(typer.style(f"error: {error}", fg=typer.colors.RED))
                code = 1
            self.say("stopping")
        # Leaving the ExitStack stopped the services, the emulator, Postgres and NATS.
        self.say("stopped")
        return code

    def _stopping(self) -> bool:
        if self._stop.event.is_set():
            self.say(f"{self._stop.received} received during startup")
            return True
        return False

    def _run(self, cleanup: contextlib.ExitStack) -> int:
        secret = self._secret()
        nats_url = self._nats(cleanup)
        if self._stopping():
            return 0
        database_url = self._postgres(cleanup)
        if self._stopping():
            return 0
        emulator_url = self._emulator(cleanup)
        env = service_env(
            os.environ,
            provider=self.options.provider,
            nats_url=nats_url,
            database_url=database_url,
            jwt_secret=secret,
            gateway_port=self.gateway_port,
            emulator_url=emulator_url,
        )
        self._start_services(cleanup, env)
        token = mint_token(secret, "dev")
        if not self._wait_ready(token):
            return 0 if self._stop.event.is_set() else 1
        self._banner(token)
        return self._supervise()

    def _secret(self) -> str:
        secret = ensure_secret(self.settings, self.data_dir)
        if len(secret) < MIN_SECRET_LENGTH:
            raise StartupError(
                f"the JWT secret must be at least {MIN_SECRET_LENGTH} characters (the gateway "
                "refuses shorter ones)"
            )
        return secret

    def _nats(self, cleanup: contextlib.ExitStack) -> str:
        if self.settings.nats_url is not None:
            self.say("using the NATS server of CHATBUS_NATS_URL")
            return self.settings.nats_url
        nats = EmbeddedNats(
            self.data_dir / "nats",
            port=self.options.nats_port,
            sync_interval=self.options.nats_sync_interval,
        )
        self.say(f"starting nats-server on port {nats.port} (log: {nats.log_file})")
        try:
            nats.start()
        except EmbeddedServiceError as error:
            raise StartupError(
                f"{error}\n(port {nats.port} busy? set CHATBUS_NATS_URL to use a running server)"
            ) from error
        cleanup.callback(nats.stop)
        self._watched.append(("nats-server", nats))
        return nats.url

    def _postgres(self, cleanup: contextlib.ExitStack) -> str:
        if self.settings.database_url is not None:
            self.say("using the database of CHATBUS_DATABASE_URL")
            return self.settings.database_url
        pg = EmbeddedPostgres(self.data_dir / "postgres", port=self.options.postgres_port)
        self.say(f"starting postgres on port {pg.port} (log: {pg.log_file})")
        try:
            pg.start()
        except EmbeddedServiceError as error:
            raise StartupError(
                f"{error}\n(port {pg.port} busy? set CHATBUS_DATABASE_URL to use a running server)"
            ) from error
        cleanup.callback(pg.stop)
        self._watched.append(("postgres", pg))
        pg.ensure_database(DATABASE)
        return pg.url(DATABASE)

    def _emulator(self, cleanup: contextlib.ExitStack) -> str | None:
        if self.options.provider is not Provider.EMULATOR:
            return None
        port = free_port(_HOST)
        emulator = ManagedChild(
            "emulator",
            [script_path("chatbus-emulator"), "--host", _HOST, "--port", str(port)],
            printer=self.printer,
        )
        cleanup.callback(emulator.stop, _STOP_TIMEOUT)
        self._watched.append(("emulator", emulator))
        if not wait_for_port(_HOST, port, _EMULATOR_TIMEOUT, lambda: emulator.poll() is None):
            code = emulator.poll()
            state = "still running" if code is None else f"exited, {describe_exit(code)}"
            raise StartupError(f"the emulator did not accept connections on port {port} ({state})")
        return f"http://{_HOST}:{port}"

    def _start_services(self, cleanup: contextlib.ExitStack, env: Mapping[str, str]) -> None:
        # Resolve every script first: a missing one must fail before anything is spawned.
        scripts = {name: script_path(f"chatbus-{name}") for name in SERVICES}
        cleanup.callback(stop_all, self.services, _STOP_TIMEOUT)
        for name in SERVICES:
            child = ManagedChild(name, [scripts[name]], printer=self.printer, env=env)
            self.services.append(child)
            self._watched.append((name, child))

    def _exited(self) -> tuple[str, int | None] | None:
        """The first watched process that is no longer running, with its exit code."""
        for name, process in self._watched:
            if isinstance(process, ManagedChild):
                if process.poll() is not None:
                    return name, process.poll()
            elif not process.is_running():
                return name, None
        return None

    def _wait_ready(self, token: str) -> bool:
        """Wait until every probe answers 200; False on a stop, a dead child or the timeout."""
        base = f"http://{_HOST}:{self.gateway_port}"
        # /readyz covers the gateway and NATS only. The two queries go through the gateway to
        # the conversation and inference services, so the banner does not promise a REST API
        # that still answers 503 while those run their migrations.
        pending = [f"{base}/readyz", f"{base}/v1/conversations?limit=1", f"{base}/v1/models"]
        self.say(f"waiting for the gateway ({pending[0]}) and the services behind it")
        deadline = time.monotonic() + self.options.ready_timeout
        last = ""
        while not self._stopping():
            gone = self._exited()
            if gone is not None:
                self._report_exit(*gone, during="startup")
                return False
            while pending:
                status = _http_status(pending[0], token)
                # 404: this gateway has no such route, so there is nothing to wait for.
                if status not in (200, 404):
                    last = f"{pending[0]} answers {status or 'nothing'}"
                    break
                pending.pop(0)
            if not pending:
                return True
            if time.monotonic() > deadline:
                self.say(
                    typer.style(
                        f"error: not ready within {self.options.ready_timeout:.0f}s: {last}",
                        fg=typer.colors.RED,
                    )
                )
                return False
            self._stop.event.wait(0.5)
        return False

    def _report_exit(self, name: str, code: int | None, during: str) -> None:
        detail = "" if code is None else f" ({describe_exit(code)})"
        self.say(typer.style(f"{name} exited{detail} during {during}", fg=typer.colors.RED))

    def _supervise(self) -> int:
        while not self._stop.event.wait(0.2):
            gone = self._exited()
            if gone is not None:
                self._report_exit(*gone, during="the run")
                return 1
        self.say(f"{self._stop.received} received")
        return 0

    def _banner(self, token: str) -> None:
        base = f"{_HOST}:{self.gateway_port}"
        ws_url = f"ws://{base}/v1/ws"
        token_cmd = "chatbus token --user NAME"
        if self.data_dir != DEFAULT_DATA_DIR.resolve():
            token_cmd += f" --data-dir {shlex.quote(str(self.options.data_dir))}"
        python = _display_path(Path(sys.executable))
        # One line, no imports before the `with` (a compound statement cannot follow `;`), no
        # `$` or `!` (bash would expand them inside the double quotes).
        snippet = (
            "with __import__('websockets.sync.client').sync.client.connect("
            "(A:=__import__('sys').argv)[1],additional_headers={'Authorization':'Bearer '+A[2]})"
            " as w: J=__import__('json');w.send(J.dumps({'type':'chat.send',"
            "'id':str(__import__('time').time()),'content':A[3]}));any(print(f.get('text') or "
            "'\\n'+str(f),end='',flush=True) or f['type'] in ('chat.end','chat.error') "
            "for f in map(J.loads,iter(w.recv,0)));print()"
        )
        lines = [
            typer.style(READY_BANNER, fg=typer.colors.GREEN, bold=True),
            f"  WebSocket  {ws_url}  (header Authorization: Bearer <token>)",
            f"  REST docs  http://{base}/docs",
            f"  dev token  export TOKEN={token}",
            f"             (user 'dev', valid 24 h; other users: {token_cmd})",
            f'  try it     {shlex.quote(python)} -c "{snippet}" {ws_url} "$TOKEN" Hello',
            f"  {BANNER_END}",
        ]
        self.printer.lines(_ME, lines, colour=typer.colors.WHITE, bold=True)


def _http_status(url: str, token: str) -> int | None:
    """The status of GET `url` with the dev token; None when nothing answers.

    urllib, because httpx is not a dependency of this package.
    """
    # No proxies: an http_proxy from the developer's shell must not intercept 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with opener.open(request, timeout=5.0) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:  # refused, reset, timed out (URLError is an OSError too)
        return None


def _display_path(path: Path) -> str:
    """`path` relative to the working directory when it is inside it (shorter to read)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_dev(options: DevOptions) -> int:
    """Run `chatbus dev` with `options`; the process exit code."""
    return DevStack(options).run()
