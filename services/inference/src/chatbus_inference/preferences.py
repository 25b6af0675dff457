"""A user's preferences from the `user_preferences` bucket, which the conversation service fills.

A new conversation's first turn reads them here (one round trip to NATS) instead of
asking the conversation service. A missing key, or a bucket that cannot be read, sends
the turn to that service as before; it writes the key for the next time.
"""

from __future__ import annotations

import logging

from chatbus_contracts.common import user_key
from chatbus_contracts.conversations import Preferences
from chatbus_contracts.streams import USER_PREFERENCES
from chatbus_runtime.bus import Bucket
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from pydantic import ValidationError

logger = logging.getLogger(__name__)


class PreferencesReader:
    """Reads `Preferences` keyed by `user_key(user_id)`."""

    def __init__(self, broker: NatsBroker) -> None:
        self._bucket = Bucket(broker, USER_PREFERENCES)

    async def get(self, user_id: str) -> Preferences | None:
        """The user's preferences, or None: ask the conversation service."""
        try:
            value = await self._bucket.value(user_key(user_id))
            return None if value is None else Preferences.model_validate_json(value)
        except (NatsError, TimeoutError, ValidationError) as error:
            logger.warning("preferences of %s unreadable in the bucket: %s", user_id, error)
            return None
