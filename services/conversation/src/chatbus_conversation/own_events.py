"""Events this process published for its own commands, committed with their change.

The conversation service's consumer gets its own `conversation.*` events back from the
EVENTS stream. It applies them for the case a command published but did not commit
(the projection is idempotent and ordered by `revision`); an event whose change this
process did commit is already in the table, so its consumer acks it without a
statement. Other replicas apply it as usual (a no-op there too).

The id is remembered once the commit returns. An idle consumer often gets the event
back before that (the PubAck comes inside the transaction): it then applies it, which
waits for the command's row lock and changes nothing, and the id stays until newer
ones push it out. Under load, when the statements count, the consumer is behind and
skips them.
"""

from __future__ import annotations

from uuid import UUID

from nats.aio.msg import Msg

# Events remembered at most (the oldest forgotten first: then merely applied again).
REMEMBERED = 10_000


class OwnEvents:
    """The ids of events whose change this process has committed, until they come back."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self._limit = limit
        self._ids: dict[str, None] = {}

    def committed(self, event_id: UUID) -> None:
        """The change of event `event_id` is committed: its delivery needs no applying."""
        self._ids[str(event_id)] = None
        if len(self._ids) > self._limit:
            del self._ids[next(iter(self._ids))]

    def came_back(self, message: Msg) -> bool:
        """True (once) if `message` is an event whose change this process committed."""
        event_id = (message.headers or {}).get("Nats-Msg-Id")
        if event_id not in self._ids:
            return False
        del self._ids[event_id]
        return True
