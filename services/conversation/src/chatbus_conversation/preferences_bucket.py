"""Each user's preferences in the `user_preferences` bucket, for inference's new conversations.

Postgres holds the preferences; the bucket is a copy inference reads on a new
conversation's first turn instead of asking this service (one round trip to NATS,
none through Python at the other end). A change is written inside its transaction,
under the row lock (commit order), and a failed write rolls it back; a user whose key
is missing (never written, or expired) gets it written when a new conversation asks
here, and only if it is still missing, so that copy never replaces a newer change.
The bucket's expiry bounds how long a copy outlives a change whose commit failed.
"""

from __future__ import annotations

import logging

from chatbus_contracts.common import user_key
from chatbus_contracts.conversations import Preferences
from chatbus_contracts.streams import USER_PREFERENCES
from chatbus_runtime.bus import Bucket
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.js.errors import KeyWrongLastSequenceError

logger = logging.getLogger(__name__)


class PreferencesBucket:
    """Writes `Preferences` keyed by `user_key(user_id)`."""

    def __init__(self, broker: NatsBroker) -> None:
        self._bucket = Bucket(broker, USER_PREFERENCES)

    async def put(self, user_id: str, preferences: Preferences) -> None:
        """A change, before its commit; raises if NATS does not take it."""
        await (await self._bucket.kv()).put(user_key(user_id), _encoded(preferences))

    async def offer(self, user_id: str, preferences: Preferences) -> None:
        """Write the user's preferences if the bucket has none for them; never raises."""
        try:
            await (await self._bucket.kv()).create(user_key(user_id), _encoded(preferences))
        except KeyWrongLastSequenceError:
            pass  # a change was written meanwhile: it is newer than what was read here
        except (NatsError, TimeoutError) as error:
            logger.warning("preferences of %s not copied to the bucket: %s", user_id, error)


def _encoded(preferences: Preferences) -> bytes:
    return preferences.model_dump_json().encode()
