"""Console entry point: `chatbus-inference`."""

from __future__ import annotations

from chatbus_runtime.service import run_service

from .app import InferenceService
from .settings import InferenceSettings


def run() -> None:
    """Run the inference service until SIGINT/SIGTERM."""
    run_service("inference", InferenceSettings(), InferenceService)
