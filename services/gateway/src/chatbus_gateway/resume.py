"""`chat.resume`: where the rest of a turn comes from.

record in chat_turns?  no, or another user's ─────────▶ not_found
chunks in CHAT_CHUNKS? yes ───────────────────────────▶ replay from the stream, then
                                                        the live tail (any gateway)
answer stored?         yes (chunks expired) ──────────▶ chat.message with it
accepted recently?     yes (not started yet) ─────────▶ wait for the tail
                       no  (expired, never stored) ───▶ not_found
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import UUID

from chatbus_contracts import subjects
from chatbus_contracts.chunks import ReplyChunk
from chatbus_contracts.common import utc_now
from chatbus_contracts.streams import CHAT_CHUNKS
from chatbus_contracts.ws import ChatMessage
from faststream.nats import NatsBroker

from .conversations import ConversationClient
from .records import TurnRecords
from .replay import replay_chunks


class Resumer:
    """Finds what a `chat.resume` should deliver."""

    def __init__(
        self, broker: NatsBroker, records: TurnRecords, conversations: ConversationClient
    ) -> None:
        self._broker = broker
        self._records = records
        self._conversations = conversations

    async def locate(
        self, user_id: str, request_id: UUID, after_seq: int
    ) -> AsyncIterator[ReplyChunk] | ChatMessage | None:
        """The turn's chunks after `after_seq`, its stored answer, or None if not the user's."""
        record = await self._records.get(request_id)
        if record is None or record.user_id != user_id:
            return None
        if await self._chunks_kept(request_id):
            return replay_chunks(self._broker, request_id, after_seq=after_seq)
        conversation = await self._conversations.get(user_id, record.conversation_id)
        if conversation is not None:
            for message in conversation.messages:
                if message.id == record.assistant_message_id:
                    return ChatMessage(request_id=request_id, message=message)
        if utc_now() - record.accepted_at > timedelta(seconds=CHAT_CHUNKS.max_age_seconds):
            return None
        return replay_chunks(self._broker, request_id, after_seq=after_seq)

    async def _chunks_kept(self, request_id: UUID) -> bool:
        js = self._broker.connection.jetstream()
        info = await js.stream_info(
            CHAT_CHUNKS.name, subjects_filter=subjects.chat_chunks_request_wildcard(request_id)
        )
        return bool(info.state.subjects)
