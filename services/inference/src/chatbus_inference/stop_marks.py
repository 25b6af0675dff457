"""Stops asked for before a turn reached a replica: a marker in the `chat_turns` bucket.

A `chat.stop` that no replica answers (the request is still queued, or being picked
up) leaves `stop_marker_key(request_id)` behind; a turn checks it along with its plan,
before it would start generating, and then ends as stopped.
"""

from __future__ import annotations

import logging
from uuid import UUID

from chatbus_contracts.chunks import stop_marker_key
from chatbus_contracts.streams import CHAT_TURNS
from chatbus_runtime.bus import Bucket
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

logger = logging.getLogger(__name__)


class StopMarks:
    """Reads stop markers written by the gateway."""

    def __init__(self, broker: NatsBroker) -> None:
        self._bucket = Bucket(broker, CHAT_TURNS)

    async def marked(self, request_id: UUID) -> bool:
        """Whether a stop of `request_id` is waiting; False when the bucket cannot be read."""
        try:
            return await self._bucket.value(stop_marker_key(request_id)) is not None
        except (NatsError, TimeoutError) as error:
            logger.warning("stop marker of %s unreadable: %s", request_id, error)
            return False
