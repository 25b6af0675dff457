"""The `message.failed` event of a turn, whoever ends it (the turn itself, or dead letters)."""

from __future__ import annotations

from typing import Any

from chatbus_contracts import subjects
from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.common import derived_id
from chatbus_contracts.events import MessageFailed


def message_failed(request: GenerateReply, code: str, error: str, **details: Any) -> MessageFailed:
    """The turn's one `message.failed` (its event id is the request's, so it is sent once).

    `details`: what the turn got to, e.g. `partial_content`, `usage`, `model`, `provider`.
    """
    return MessageFailed(
        event_id=derived_id(request.request_id, subjects.MESSAGE_FAILED),
        user_id=request.user_id,
        message_id=request.assistant_message_id,
        conversation_id=request.conversation_id,
        request_id=request.request_id,
        code=code,
        error=error,
        **details,
    )
