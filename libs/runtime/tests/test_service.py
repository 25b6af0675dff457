"""A service's entry point (`run_service`), run in a process of its own."""

from __future__ import annotations

import subprocess
import sys

from chatbus_runtime.service import YOUNG_COLLECTION_THRESHOLD

PROBE = """
import asyncio, gc, os, signal
from chatbus_runtime.service import run_service
from chatbus_runtime.settings import ServiceSettings

class Probe:
    async def start(self):
        asyncio.get_running_loop().call_soon(self.report)

    def report(self):
        print("frozen", gc.get_freeze_count(), gc.get_threshold()[0], flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    async def stop(self):
        print("stopped", flush=True)

run_service("probe", ServiceSettings(), lambda settings, provider: Probe())
"""


def test_a_started_service_tunes_its_garbage_collector_and_stops_on_sigterm() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    tuned, stopped = done.stdout.split("\n")[:2]
    frozen, young_threshold = map(int, tuned.removeprefix("frozen ").split())
    # Modules, settings, the tracer provider: tens of thousands of objects full
    # collections no longer walk.
    assert frozen > 10_000 and young_threshold == YOUNG_COLLECTION_THRESHOLD
    assert stopped == "stopped"
