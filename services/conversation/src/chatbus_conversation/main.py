"""Console entry point: `chatbus-conversation`."""

from __future__ import annotations

from chatbus_runtime.service import run_service

from .app import ConversationService
from .settings import ConversationSettings


def run() -> None:
    """Run the conversation service until SIGINT/SIGTERM."""
    run_service("conversation", ConversationSettings(), ConversationService)
