"""Live conversation updates: `conversation.*` events pushed to every open socket of the user.

Each gateway process has one core subscription to `conversation.*` (the events are
also in the EVENTS stream; a socket that was closed meanwhile reloads by REST).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Protocol

from chatbus_contracts import subjects
from chatbus_contracts.common import Model
from chatbus_contracts.events import ConversationCreated, ConversationDeleted, ConversationUpdated
from chatbus_contracts.ws import (
    ConversationCreatedFrame,
    ConversationDeletedFrame,
    ConversationUpdatedFrame,
)
from pydantic import ValidationError

logger = logging.getLogger(__name__)
PUSH_TIMEOUT_SECONDS = 1.0


class FrameSink(Protocol):
    """Something that writes frames to one client (a `ChatSession`)."""

    async def send(self, frame: Model) -> None:
        """Write one frame."""


def live_frame(subject: str, body: bytes) -> tuple[str, Model] | None:
    """The user and the frame of one `conversation.*` event; None if it is not one."""
    try:
        if subject == subjects.CONVERSATION_CREATED:
            created = ConversationCreated.model_validate_json(body)
            return created.user_id, ConversationCreatedFrame(
                conversation_id=created.conversation_id,
                title=created.title,
                settings=created.settings,
                created_at=created.created_at,
            )
        if subject == subjects.CONVERSATION_UPDATED:
            updated = ConversationUpdated.model_validate_json(body)
            return updated.user_id, ConversationUpdatedFrame(
                conversation_id=updated.conversation_id,
                title=updated.title,
                settings=updated.settings,
                active_message_id=updated.active_message_id,
                updated_at=updated.updated_at,
            )
        if subject == subjects.CONVERSATION_DELETED:
            deleted = ConversationDeleted.model_validate_json(body)
            return deleted.user_id, ConversationDeletedFrame(
                conversation_id=deleted.conversation_id
            )
    except ValidationError as error:
        logger.warning("ignoring a malformed %s event: %s", subject, error)
    return None


class UserSockets:
    """The open sockets of each user on this gateway process."""

    def __init__(self) -> None:
        self._sockets: dict[str, set[FrameSink]] = defaultdict(set)

    def add(self, user_id: str, sink: FrameSink) -> None:
        """Start pushing the user's live frames to `sink`."""
        self._sockets[user_id].add(sink)

    def remove(self, user_id: str, sink: FrameSink) -> None:
        """Stop pushing to `sink`."""
        sockets = self._sockets.get(user_id)
        if sockets is not None:
            sockets.discard(sink)
            if not sockets:
                del self._sockets[user_id]

    async def push(self, subject: str, body: bytes) -> None:
        """Send one event's frame to every open socket of its user."""
        found = live_frame(subject, body)
        if found is None:
            return
        user_id, frame = found
        sinks = list(self._sockets.get(user_id, ()))
        # A socket that does not take a frame in time misses it (it reloads by REST);
        # it must not hold up every other user's live frames.
        results = await asyncio.gather(
            *(asyncio.wait_for(s.send(frame), PUSH_TIMEOUT_SECONDS) for s in sinks),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, Exception):
                logger.debug("a socket went away during a live push: %s", result)
