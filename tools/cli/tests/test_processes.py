"""Prefixed child output and child stopping (chatbus_cli.processes), dev env assembly."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from chatbus_cli.dev import Provider, service_env
from chatbus_cli.embedded import free_port
from chatbus_cli.processes import (
    ManagedChild,
    OutputPrinter,
    describe_exit,
    script_path,
    stop_all,
    wait_for_port,
)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_output_is_prefixed_line_by_line() -> None:
    out = io.StringIO()
    printer = OutputPrinter(out)
    child = ManagedChild(
        "worker",
        _python(
            """
            import sys
            print("first line")
            print("to stderr", file=sys.stderr)
            print("progress 10%\\rprogress 100%")
            sys.stdout.write("no newline at the end")
            sys.exit(3)
            """
        ),
        printer=printer,
    )
    assert child.wait(10) == 3
    child.join_output()
    assert out.getvalue().splitlines() == [
        "worker      | first line",
        "worker      | to stderr",
        "worker      | progress 100%",
        "worker      | no newline at the end",
    ]


def test_describe_exit() -> None:
    assert describe_exit(None) == "no code"
    assert describe_exit(0) == "code 0"
    assert describe_exit(3) == "code 3"
    assert describe_exit(-9) == "signal SIGKILL"


def test_stop_sends_sigterm_first() -> None:
    out = io.StringIO()
    child = ManagedChild(
        "polite",
        _python(
            """
            import signal, sys, time
            def bye(signum, frame):
                print("got SIGTERM")
                sys.exit(0)
            signal.signal(signal.SIGTERM, bye)
            print("ready")
            while True:
                time.sleep(0.1)
            """
        ),
        printer=OutputPrinter(out),
    )
    _wait_for_output(out, "ready")
    assert child.stop(timeout=10) == 0
    assert "polite      | got SIGTERM" in out.getvalue().splitlines()


def test_stop_kills_a_child_that_ignores_sigterm() -> None:
    out = io.StringIO()
    child = ManagedChild(
        "stubborn",
        _python(
            """
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("ready")
            time.sleep(60)
            """
        ),
        printer=OutputPrinter(out),
    )
    _wait_for_output(out, "ready")
    started = time.monotonic()
    assert child.stop(timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5
    assert "killing it" in out.getvalue()
    assert not _alive(child.pid)


def test_concurrent_children_never_interleave_mid_line() -> None:
    out = io.StringIO()
    printer = OutputPrinter(out)
    code = """
        import sys
        name = sys.argv[1]
        for i in range(2000):
            print(f"{name}-{i}-" + "x" * 300)
        """
    children = [
        ManagedChild(name, [*_python(code), name], printer=printer) for name in ("a", "bb", "ccc")
    ]
    for child in children:
        assert child.wait(30) == 0
        child.join_output()
    lines = out.getvalue().splitlines()
    assert len(lines) == 6000
    pattern = re.compile(r"^(a|bb|ccc) +\| (a|bb|ccc)-(\d+)-x{300}$")
    seen: dict[str, list[int]] = {"a": [], "bb": [], "ccc": []}
    for line in lines:
        match = pattern.match(line)
        assert match is not None, line[:80]
        assert match.group(1) == match.group(2)
        assert len(line.split("|")[0]) == 12
        seen[match.group(1)].append(int(match.group(3)))
    assert all(numbers == list(range(2000)) for numbers in seen.values())


def test_stop_all_stops_every_child() -> None:
    out = io.StringIO()
    printer = OutputPrinter(out)
    children = [
        ManagedChild(f"sleeper{i}", _python("import time; time.sleep(60)"), printer=printer)
        for i in range(3)
    ]
    started = time.monotonic()
    stop_all(children, timeout=10)
    # Default SIGTERM action ends each at once; they are stopped in parallel.
    assert time.monotonic() - started < 5
    assert [child.poll() for child in children] == [-signal.SIGTERM] * 3


def test_child_dies_with_its_parent_even_on_sigkill() -> None:
    # An intermediate process starts a sleeper through ManagedChild, then is SIGKILLed:
    # PR_SET_PDEATHSIG must take the sleeper down too.
    parent = subprocess.Popen(
        _python(
            f"""
            import sys, time
            from chatbus_cli.processes import ManagedChild, OutputPrinter
            child = ManagedChild(
                "sleeper", [{sys.executable!r}, "-c", "import time; time.sleep(60)"],
                printer=OutputPrinter(),
            )
            print(child.pid, flush=True)
            time.sleep(60)
            """
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip().isdigit(), line
        child_pid = int(line)
        assert _alive(child_pid)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child_pid)
    finally:
        parent.kill()
        parent.wait()


def test_script_path_finds_this_environment_scripts() -> None:
    path = script_path("chatbus")
    assert os.access(path, os.X_OK)
    with pytest.raises(FileNotFoundError, match="no-such-script"):
        script_path("no-such-script-chatbus")


def test_wait_for_port() -> None:
    port = free_port()
    assert not wait_for_port("127.0.0.1", port, timeout=0.3)
    assert not wait_for_port("127.0.0.1", port, timeout=10, alive=lambda: False)
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert wait_for_port("127.0.0.1", port, timeout=5)


def _env(
    provider: Provider, base: dict[str, str], emulator_url: str | None = None
) -> dict[str, str]:
    return service_env(
        base,
        provider=provider,
        nats_url="nats://127.0.0.1:1",
        database_url="postgresql+asyncpg://postgres@127.0.0.1:2/chatbus",
        jwt_secret="s" * 40,
        gateway_port=8123,
        emulator_url=emulator_url,
    )


def test_service_env_providers() -> None:
    base = {"OPENAI_API_KEY": "sk-real", "OPENAI_BASE_URL": "http://x/v1", "PATH": "/bin"}
    auto = _env(Provider.AUTO, base)
    assert auto["OPENAI_API_KEY"] == "sk-real" and auto["OPENAI_BASE_URL"] == "http://x/v1"
    assert auto["CHATBUS_NATS_URL"] == "nats://127.0.0.1:1"
    assert auto["CHATBUS_DATABASE_URL"].endswith(":2/chatbus")
    assert auto["CHATBUS_JWT_SECRET"] == "s" * 40
    assert auto["CHATBUS_GATEWAY_PORT"] == "8123"
    assert auto["PATH"] == "/bin"

    keys = {"CHATBUS_OPENAI_API_KEY": "sk-other", "ANTHROPIC_API_KEY": "a", "GEMINI_API_KEY": "g"}
    demo = _env(Provider.DEMO, {**base, **keys})
    assert not {"OPENAI_API_KEY", "OPENAI_BASE_URL", *keys} & demo.keys()
    assert demo["CHATBUS_DEFAULT_MODEL"] == "demo"

    emulator = _env(Provider.EMULATOR, {**base, **keys}, "http://127.0.0.1:9")
    assert emulator["OPENAI_BASE_URL"] == "http://127.0.0.1:9/v1"
    assert emulator["OPENAI_API_KEY"] == "emulator"
    assert emulator["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert emulator["ANTHROPIC_API_KEY"] == "emulator"
    assert not {"CHATBUS_OPENAI_API_KEY", "GEMINI_API_KEY"} & emulator.keys()
    assert base["OPENAI_API_KEY"] == "sk-real"  # the caller's mapping is left alone


def _wait_for_output(out: io.StringIO, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in out.getvalue():
        assert time.monotonic() < deadline, f"{text!r} never printed: {out.getvalue()!r}"
        time.sleep(0.02)
