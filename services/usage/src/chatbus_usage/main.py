"""Console entry point: `chatbus-usage`."""

from __future__ import annotations

from chatbus_runtime.service import run_service

from .app import UsageService
from .settings import UsageSettings


def run() -> None:
    """Run the usage service until SIGINT/SIGTERM."""
    run_service("usage", UsageSettings(), UsageService)
