"""Reading server frames leniently: a newer gateway may add frame types and fields."""

from __future__ import annotations

import json
import logging
from typing import Any

from chatbus_contracts.common import Model
from chatbus_contracts.ws import (
    ChatAccepted,
    ChatDelta,
    ChatEnd,
    ChatError,
    ChatMessage,
    ChatRestart,
    ChatStopped,
    ConversationCreatedFrame,
    ConversationDeletedFrame,
    ConversationUpdatedFrame,
    Pong,
    ServerFrame,
)
from pydantic import ValidationError

logger = logging.getLogger("chatbus_client")

ConversationFrame = ConversationCreatedFrame | ConversationUpdatedFrame | ConversationDeletedFrame
"""A live `conversation.*` frame: not part of any turn."""

_MODELS: dict[str, type[Model]] = {
    model.model_fields["type"].default: model
    for model in (
        ChatAccepted,
        ChatDelta,
        ChatRestart,
        ChatEnd,
        ChatStopped,
        ChatError,
        Pong,
        ChatMessage,
        ConversationCreatedFrame,
        ConversationUpdatedFrame,
        ConversationDeletedFrame,
    )
}


def parse_server_frame(text: str | bytes) -> ServerFrame | None:
    """The frame in `text`, or None (logged) for one this client does not know.

    Unknown top-level fields are dropped before validation: the contract models refuse
    them, but a client must keep working when the server learns something new.
    """
    try:
        data: Any = json.loads(text)
        model = _MODELS[data["type"]]
        known = {key: value for key, value in data.items() if key in model.model_fields}
        frame: ServerFrame = model.model_validate(known)  # type: ignore[assignment]
    except (ValueError, KeyError, TypeError, ValidationError) as error:
        logger.warning("ignoring a server frame this client cannot read: %s", error)
        return None
    return frame
