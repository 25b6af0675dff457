"""Turn records in the `chat_turns` key-value bucket: who owns a request, and that it exists.

Written after the PubAck of a new turn. A resend whose request id has a record is a
duplicate even after JetStream's dedupe window has passed; `chat.resume` checks the
owner here, so another user's request id answers `not_found`. A `chat.stop` before the
turn reached a replica leaves a stop marker next to the record.
"""

from __future__ import annotations

import logging
from uuid import UUID

from chatbus_contracts.chunks import stop_marker_key
from chatbus_contracts.commands import TurnRecord
from chatbus_contracts.streams import CHAT_TURNS
from chatbus_runtime.bus import Bucket
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

logger = logging.getLogger(__name__)


class TurnRecords:
    """Reads and writes `TurnRecord`s keyed by request id."""

    def __init__(self, broker: NatsBroker) -> None:
        self._bucket = Bucket(broker, CHAT_TURNS)

    async def get(self, request_id: UUID) -> TurnRecord | None:
        """The record of `request_id`, or None if no turn with that id was accepted."""
        value = await self._bucket.value(str(request_id))
        return None if value is None else TurnRecord.model_validate_json(value)

    async def put(self, record: TurnRecord) -> None:
        """Remember an accepted turn; a failure only logs (the turn itself is durable)."""
        try:
            await (await self._bucket.kv()).put(
                str(record.request_id), record.model_dump_json().encode()
            )
        except (NatsError, TimeoutError) as error:
            logger.warning("no turn record for %s: %s", record.request_id, error)

    async def mark_stop(self, request_id: UUID) -> None:
        """Ask for a stop of a turn no replica streams yet (`stopping.py`)."""
        await (await self._bucket.kv()).put(stop_marker_key(request_id), b"")
