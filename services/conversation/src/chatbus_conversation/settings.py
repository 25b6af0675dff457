"""Settings of the conversation service."""

from __future__ import annotations

from chatbus_runtime.settings import ServiceSettings
from pydantic import Field


class ConversationSettings(ServiceSettings):
    """`CHATBUS_*` variables read by the conversation service."""

    migrate_on_start: bool = True
    history_wait_seconds: float = 5.0
    """How long a history query waits for earlier events to be stored (read-your-writes)."""
    query_workers: int = Field(
        default=32,
        ge=1,
        description="Queries and commands answered at once, per subject (the database pool "
        "holds as many more connections than one fetch of events needs).",
    )
    title_max_chars: int = 60
