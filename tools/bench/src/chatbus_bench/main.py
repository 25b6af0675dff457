"""Console entry point: `chatbus-bench`."""

from __future__ import annotations


def run() -> None:
    """Placeholder until the benchmark lands."""
    raise SystemExit("not yet")
