"""The machine a run happened on, and the file-descriptor limit the idle scenario needs."""

from __future__ import annotations

import os
import platform
import resource
import sys
from dataclasses import dataclass
from typing import Any

import psutil


def describe() -> dict[str, Any]:
    """CPU model and count, memory, kernel, Python: enough to compare two results files."""
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                model,
            )
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "system": platform.system(),
        "python": sys.version.split()[0],
        "load_average_at_start": load_average(),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (other work on the machine shows here)."""
    return [round(load, 2) for load in os.getloadavg()]


@dataclass(frozen=True)
class FileLimit:
    """RLIMIT_NOFILE after raising the soft limit as far as the hard one allows."""

    before: int
    soft: int
    hard: int

    def capped(self, wanted: int) -> bool:
        """True when `wanted` descriptors do not fit under the soft limit."""
        return wanted > self.soft

    def to_json(self) -> dict[str, int]:
        """The results-file form."""
        return {"soft_before": self.before, "soft": self.soft, "hard": self.hard}


def raise_file_limit() -> FileLimit:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
    return FileLimit(before=soft, soft=target, hard=hard)
