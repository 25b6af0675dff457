"""Child processes whose output is shown line by line behind a coloured name prefix.

Every child is started like the embedded servers (see `embedded.py`): in its own process
group, so a Ctrl-C in the terminal reaches only `chatbus dev`, which then stops the children
in order; and armed with PR_SET_PDEATHSIG, so the kernel kills it if `chatbus dev` dies, even
by SIGKILL.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import typer

# Private helpers shared with the embedded servers: the long-lived spawner thread (which the
# parent-death signal needs) and the tree kill that also reaches grandchildren.
from .embedded import _SPAWNER, _kill_tree, _make_preexec

PREFIX_WIDTH = 12
_COLOURS = (
    typer.colors.CYAN,
    typer.colors.GREEN,
    typer.colors.YELLOW,
    typer.colors.MAGENTA,
    typer.colors.BLUE,
    typer.colors.BRIGHT_CYAN,
    typer.colors.BRIGHT_GREEN,
    typer.colors.BRIGHT_MAGENTA,
)


class OutputPrinter:
    """Writes `name | line` lines; whole lines only, however many threads write at once."""

    def __init__(self, stream: TextIO | None = None, width: int = PREFIX_WIDTH) -> None:
        """Print to `stream` (default: stdout at the time of each write)."""
        self._stream = stream
        self._width = width
        self._lock = threading.Lock()
        self._colours: dict[str, str] = {}
        self._palette = itertools.cycle(_COLOURS)

    def _colour(self, name: str) -> str:
        if name not in self._colours:
            self._colours[name] = next(self._palette)
        return self._colours[name]

    def line(self, name: str, text: str, *, colour: str | None = None, bold: bool = False) -> None:
        """Print one line of `name`'s output behind its fixed-width, coloured prefix."""
        self.lines(name, [text], colour=colour, bold=bold)

    def lines(
        self, name: str, texts: Iterable[str], *, colour: str | None = None, bold: bool = False
    ) -> None:
        """Print several lines as one block: no other child's line lands in between."""
        with self._lock:
            prefix = typer.style(
                f"{name:<{self._width}}|", fg=colour or self._colour(name), bold=bold
            )
            for text in texts:
                # click strips the colour codes when the stream is not a terminal.
                typer.echo(f"{prefix} {text}", file=self._stream or sys.stdout)


def describe_exit(code: int | None) -> str:
    """`code 3`, `signal SIGKILL` (Popen's negative codes) or `no code` (still unknown)."""
    if code is None:
        return "no code"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def script_path(name: str) -> str:
    """The console script `name` of this environment, else the one on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: is its package installed in this environment?")
    return found


class ManagedChild:
    """One running child; a daemon thread copies its stdout and stderr to an `OutputPrinter`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        printer: OutputPrinter,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """Start `argv` now; its output shows up behind `name`."""
        self.name = name
        self._printer = printer
        preexec = _make_preexec(os.getpid())
        child_env = dict(os.environ if env is None else env)
        # Python children block-buffer a piped stdout: their prints would show up late and
        # out of order with their (unbuffered) log lines on stderr.
        child_env.setdefault("PYTHONUNBUFFERED", "1")

        def _popen() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=child_env,
                close_fds=True,
                process_group=0,
                preexec_fn=preexec,
            )

        self.proc = _SPAWNER.run(_popen)
        self._reader = threading.Thread(
            target=self._copy_output, name=f"output-{name}", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        """The child's pid."""
        return self.proc.pid

    def poll(self) -> int | None:
        """The exit code once the child has exited, else None."""
        return self.proc.poll()

    def _copy_output(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        with stdout:
            for raw in iter(stdout.readline, b""):
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                # Progress bars redraw with \r; on a terminal a bare \r would also overwrite
                # our prefix, so only the final state of such a line is shown.
                self._printer.line(self.name, text.rsplit("\r", 1)[-1])

    def terminate(self) -> None:
        """Send SIGTERM unless the child has already exited."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """Wait up to `timeout` seconds; SIGKILL the child and its descendants if still alive.

        Returns the exit code (negative: killed by that signal).
        """
        try:
            self.proc.wait(max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            self._printer.line(self.name, "did not stop in time; killing it (SIGKILL)")
            _kill_tree(self.proc)
        return self.proc.returncode

    def join_output(self, timeout: float = 5.0) -> None:
        """Wait until the last output line has been printed.

        A grandchild that inherited the pipe can keep it open past the child's exit; the
        thread is a daemon, so giving up after `timeout` never keeps us from exiting.
        """
        self._reader.join(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL; returns the exit code."""
        self.terminate()
        code = self.wait(timeout)
        self.join_output()
        return code


def stop_all(children: Iterable[ManagedChild], timeout: float = 10.0) -> None:
    """SIGTERM every child at once, then give each up to `timeout` seconds before SIGKILL."""
    running = list(children)
    for child in running:
        child.terminate()
    for child in running:
        started = time.monotonic()
        child.wait(timeout)
        # Their own grace periods run in parallel, so later children get what is left of
        # theirs rather than a fresh `timeout` after a slow one.
        timeout = max(timeout - (time.monotonic() - started), 0.5)
    for child in running:
        child.join_output()


def wait_for_port(
    host: str, port: int, timeout: float, alive: Callable[[], bool] = lambda: True
) -> bool:
    """Poll until `host:port` accepts TCP connections; False on timeout or once `alive()` fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.1)
    return False
