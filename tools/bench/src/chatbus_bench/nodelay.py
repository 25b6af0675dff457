"""Is TCP_NODELAY set on every connection we can see? (Nagle would hold small frames back.)

Each process's established TCP sockets are listed with psutil; a copy of each socket
is taken from the owning process with `pidfd_getfd(2)` (Linux >= 5.6, needs ptrace
rights over the process: root, or the same user with a permissive ptrace scope) and
asked for `TCP_NODELAY`. The connection is named by the listening port at either end
(`inference -> emulator`, `nats-server <- gateway`, ...).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import psutil

WITH_CHILDREN = frozenset({"postgres"})
"""Processes whose sockets live in child processes (a postgres backend per connection)."""
_SYS_PIDFD_GETFD = 438  # the same number on every architecture (added after the unification)


@dataclass(frozen=True)
class Hop:
    """Sockets of one process towards one peer role, and how many have TCP_NODELAY."""

    process: str
    peer: str
    direction: str
    """`->` when the process connected out, `<-` when it accepted the connection."""
    sockets: int
    nodelay: int
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The results-file form."""
        return {
            "hop": f"{self.process} {self.direction} {self.peer}",
            "sockets": self.sockets,
            "nodelay": self.nodelay,
            "all_nodelay": self.sockets > 0 and self.nodelay == self.sockets,
            "error": self.error,
        }


@contextlib.contextmanager
def _borrowed(pid: int, fd: int) -> Iterator[socket.socket]:
    """A duplicate of process `pid`'s descriptor `fd` as a socket (closed afterwards)."""
    if pid == os.getpid():
        dup = os.dup(fd)
    else:
        libc = ctypes.CDLL(None, use_errno=True)
        pidfd = os.pidfd_open(pid)
        try:
            dup = libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
            if dup < 0:
                errno = ctypes.get_errno()
                raise OSError(errno, os.strerror(errno))
        finally:
            os.close(pidfd)
    sock = socket.socket(fileno=dup)
    try:
        yield sock
    finally:
        sock.close()


def _peer(conn: Any, roles: Mapping[int, str], pid_of_port: Mapping[int, str]) -> tuple[str, str]:
    """(direction, peer) of a connection, by the listening port at either end."""
    if conn.laddr and conn.laddr.port in roles:
        # We accepted it: the peer is whoever owns the remote port, if we know them.
        return "<-", pid_of_port.get(conn.raddr.port, "client")
    return "->", roles.get(conn.raddr.port, f"port {conn.raddr.port}")


def _established(pid: int, children: bool) -> list[tuple[int, Any]]:
    """(owning pid, connection) of `pid`, and of its child processes if `children`."""
    found: list[tuple[int, Any]] = []
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)] if children else [root]
    except psutil.Error:
        return found
    for process in tree:
        with contextlib.suppress(psutil.Error):
            found += [
                (process.pid, conn)
                for conn in process.net_connections(kind="tcp")
                if conn.status == psutil.CONN_ESTABLISHED and conn.raddr
            ]
    return found


def probe(pids: Mapping[str, int], roles: Mapping[int, str]) -> list[Hop]:
    """One `Hop` per (process, direction, peer); `roles` maps listening ports to names."""
    connections = {name: _established(pid, name in WITH_CHILDREN) for name, pid in pids.items()}
    pid_of_port = {
        conn.laddr.port: name for name, found in connections.items() for _, conn in found
    }
    counts: dict[tuple[str, str, str], list[int]] = {}
    errors: dict[tuple[str, str, str], str] = {}
    for name, found in connections.items():
        for owner, conn in found:
            direction, peer = _peer(conn, roles, pid_of_port)
            key = (name, direction, peer)
            tally = counts.setdefault(key, [0, 0])
            try:
                with _borrowed(owner, conn.fd) as sock:
                    on = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            except OSError as error:
                errors[key] = str(error)
                continue
            tally[0] += 1
            tally[1] += 1 if on else 0
    return [
        Hop(name, peer, direction, total, nodelay, errors.get((name, direction, peer)))
        for (name, direction, peer), (total, nodelay) in sorted(counts.items())
    ]
