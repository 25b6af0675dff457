"""Idle WebSockets: what one open, authenticated, silent socket costs the gateway in memory.

The gateway's RSS is read after a settle pause before the sockets open and again with
all of them open; the difference over the number of sockets is the cost per
connection. Both ends are in processes we control, so the descriptors needed (one per
socket on each side) must fit under RLIMIT_NOFILE, raised at start-up as far as the
hard limit allows; a smaller count is used, and reported, when they do not.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psutil

from ..context import BenchContext
from ..machine import FileLimit
from ..procstats import tree_rss
from ..websocket import close_sockets, open_socket

KIB = 1024
SPARE_DESCRIPTORS = 512
"""Descriptors left for everything else a process has open."""
USERS = 100
"""Sockets are spread over this many users (a user's sockets share one registry entry)."""


def _fd_limit(pid: int) -> int | None:
    try:
        soft, _ = psutil.Process(pid).rlimit(psutil.RLIMIT_NOFILE)
        return int(soft)
    except (psutil.Error, AttributeError):
        return None


async def run(ctx: BenchContext, limit: FileLimit) -> dict[str, Any]:
    """Open the sockets (in parallel batches), measure, close them."""
    wanted = ctx.options.idle.sockets
    gateway = ctx.stack.pids()["gateway"]
    gateway_limit = _fd_limit(gateway) or limit.soft
    fits = min(limit.soft, gateway_limit) - SPARE_DESCRIPTORS
    count = max(0, min(wanted, fits))
    users = ctx.new_users(min(USERS, max(count, 1)), "idle")
    tokens = ctx.tokens(users)
    settled = await ctx.settle()
    await asyncio.sleep(ctx.options.idle.settle_seconds)
    before = tree_rss(gateway, children=False)
    client_before = psutil.Process().memory_info().rss
    sockets = []
    failures: dict[str, int] = {}
    gate = asyncio.Semaphore(128)
    started = time.perf_counter()

    async def one(index: int) -> None:
        async with gate:
            try:
                sockets.append(await open_socket(ctx.endpoints.ws_url, tokens[index % len(tokens)]))
            except Exception as error:  # counted and reported: a refused socket is a result
                name = type(error).__name__
                failures[name] = failures.get(name, 0) + 1

    async with ctx.watch.measure() as usage:
        await asyncio.gather(*(one(index) for index in range(count)))
        opened_seconds = time.perf_counter() - started
        await asyncio.sleep(ctx.options.idle.settle_seconds)
        after = tree_rss(gateway, children=False)
        client_after = psutil.Process().memory_info().rss
    await close_sockets(sockets)
    per_socket = (after - before) / len(sockets) if sockets else None
    return {
        "settle_seconds": settled,
        "wanted": wanted,
        "opened": len(sockets),
        "failed": failures,
        "capped_by_file_limit": count < wanted,
        "file_limit": {**limit.to_json(), "gateway_soft": gateway_limit},
        "open_seconds": round(opened_seconds, 2),
        "gateway_rss_before_mib": round(before / KIB / KIB, 1),
        "gateway_rss_after_mib": round(after / KIB / KIB, 1),
        "rss_per_socket_kib": round(per_socket / KIB, 2) if per_socket is not None else None,
        "client_rss_per_socket_kib": round((client_after - client_before) / len(sockets) / KIB, 2)
        if sockets
        else None,
        "usage": usage.to_json(),
    }
