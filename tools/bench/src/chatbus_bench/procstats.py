"""CPU and memory of every process of the stack (and of the load client) during a scenario.

`ProcessWatch` samples each named process every half second while a scenario runs;
postgres also counts its children (a backend per connection). CPU is the share of one
core used over the scenario (100 = one core busy), summed per pid so a backend that
exits takes its CPU time with it only after its last sample; RSS is the peak of the
sampled sums (shared pages count once per process, so postgres's is an upper bound).
The whole machine's busy CPU is recorded too: `others` (machine minus the processes
watched) shows how much of the machine something else took during the scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

SAMPLE_SECONDS = 0.5
MIB = 1024 * 1024
WITH_CHILDREN = frozenset({"postgres"})
LOAD_SIDE = frozenset({"bench", "emulator"})
"""Processes that generate the load rather than serve it."""
"""Processes whose children belong to them (a postgres backend per connection)."""


def _tree(pid: int, children: bool = True) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)] if children else [root]
    except psutil.Error:
        return []


def cpu_by_pid(pid: int, children: bool = True) -> dict[int, float]:
    """User + system CPU seconds of `pid` and (unless told not to) its live descendants."""
    seconds: dict[int, float] = {}
    for process in _tree(pid, children):
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            seconds[process.pid] = times.user + times.system
    return seconds


def tree_rss(pid: int, children: bool = True) -> int:
    """Summed RSS of `pid` and (unless told not to) its descendants."""
    total = 0
    for process in _tree(pid, children):
        with contextlib.suppress(psutil.Error):
            total += int(process.memory_info().rss)
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, idle and iowait excluded)."""
    times = psutil.cpu_times()
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    return float(sum(times)) - idle


@dataclass
class _Track:
    """One named process over a scenario."""

    cpu_start: dict[int, float]
    cpu_last: dict[int, float] = field(default_factory=dict)
    rss_peak: int = 0
    rss_last: int = 0

    def sample(self, pid: int, children: bool) -> None:
        self.cpu_last.update(cpu_by_pid(pid, children))
        self.rss_last = tree_rss(pid, children)
        self.rss_peak = max(self.rss_peak, self.rss_last)

    @property
    def cpu_seconds(self) -> float:
        # A pid first seen after the start began during the scenario: all of its time counts.
        return sum(last - self.cpu_start.get(pid, 0.0) for pid, last in self.cpu_last.items())


@dataclass
class Usage:
    """CPU and memory of each process over one scenario."""

    seconds: float
    processes: dict[str, dict[str, float]] = field(default_factory=dict)
    machine_cpu_percent: float = 0.0
    """Busy CPU of the whole machine (100 = one core)."""

    @property
    def others_cpu_percent(self) -> float:
        """Machine CPU not used by the watched processes: other work on the machine."""
        ours = sum(entry["cpu_percent"] for entry in self.processes.values())
        return round(max(self.machine_cpu_percent - ours, 0.0), 1)

    def cpu_ms_per(self, units: int, skip: frozenset[str] = LOAD_SIDE) -> dict[str, float]:
        """CPU milliseconds per unit of work (a turn, a chunk) per process, and their `total`.

        The load side (the load client and the emulator) is left out of the total.
        """
        if units <= 0:
            return {}
        per = {
            name: round(entry["cpu_percent"] * 10 * self.seconds / units, 3)
            for name, entry in self.processes.items()
        }
        per["total"] = round(sum(v for name, v in per.items() if name not in skip), 3)
        return per

    def to_json(self) -> dict[str, Any]:
        """The results-file form."""
        return {
            "seconds": round(self.seconds, 2),
            "machine_cpu_percent": self.machine_cpu_percent,
            "others_cpu_percent": self.others_cpu_percent,
            "processes": self.processes,
        }

    def cpu_percent(self, name: str) -> float | None:
        """Average CPU of `name` (100 = one core)."""
        entry = self.processes.get(name)
        return None if entry is None else entry["cpu_percent"]


class ProcessWatch:
    """Knows the processes to watch; `measure()` samples them while a scenario runs."""

    def __init__(self, pids: Callable[[], Mapping[str, int]]) -> None:
        """`pids()` gives the current name -> pid map (the load client is added as `bench`)."""
        self._pids = pids

    def _current(self) -> dict[str, int]:
        return {**self._pids(), "bench": os.getpid()}

    @contextlib.asynccontextmanager
    async def measure(self) -> AsyncIterator[Usage]:
        """Sample while the body runs; the yielded `Usage` is filled in when it ends."""
        started = time.monotonic()
        machine_start = machine_busy_seconds()
        tracks = {
            name: _Track(cpu_by_pid(pid, name in WITH_CHILDREN))
            for name, pid in self._current().items()
        }
        usage = Usage(seconds=0.0)
        sampler = asyncio.create_task(self._sample(tracks))
        try:
            yield usage
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            self._sample_once(tracks)
            usage.seconds = time.monotonic() - started
            busy = machine_busy_seconds() - machine_start
            usage.machine_cpu_percent = round(100 * busy / max(usage.seconds, 1e-9), 1)
            for name, track in tracks.items():
                usage.processes[name] = {
                    "cpu_percent": round(100 * track.cpu_seconds / max(usage.seconds, 1e-9), 1),
                    "rss_peak_mib": round(track.rss_peak / MIB, 1),
                    "rss_end_mib": round(track.rss_last / MIB, 1),
                }

    async def _sample(self, tracks: dict[str, _Track]) -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            self._sample_once(tracks)

    def _sample_once(self, tracks: dict[str, _Track]) -> None:
        for name, pid in self._current().items():
            # A process started mid-scenario (embeddings): all of its CPU time counts.
            track = tracks.setdefault(name, _Track({}))
            track.sample(pid, name in WITH_CHILDREN)
