"""`chat.stop`: ask whichever inference replica streams the turn to stop it.

a replica runs the turn ──────────────────────▶ it stops it; `chat.stopped` follows
                                                on the turn's stream
no replica answers:
  not the user's turn, or it has ended ───────▶ not_found
  not picked up yet (queued, starting) ───────▶ a stop marker in `chat_turns`, which
                                                inference checks before generating;
                                                the stop is sent once more for a
                                                replica that picked it up meanwhile
"""

from __future__ import annotations

from uuid import UUID

from chatbus_contracts import subjects
from chatbus_contracts.chunks import is_terminal
from chatbus_contracts.commands import StopGeneration
from chatbus_runtime import rpc
from chatbus_runtime.chunks import last_chunk
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

from .records import TurnRecords


class Stopper:
    """Stops turns for their owners: the user id comes from the caller's token.

    The replica checks it against the turn, so nobody can stop another user's generation.
    """

    def __init__(self, broker: NatsBroker, records: TurnRecords, timeout_seconds: float) -> None:
        self._broker = broker
        self._records = records
        self._timeout = timeout_seconds

    async def stop(self, request_id: UUID, user_id: str) -> bool:
        """True if the turn will end as stopped; False if nothing of the user's can be.

        Raises `nats.errors.Error` / `TimeoutError` when the bucket or stream cannot be read.
        """
        command = StopGeneration(request_id=request_id, user_id=user_id)
        subject = subjects.chat_cancel_subject(request_id)
        try:
            await rpc.request(self._broker, subject, command, timeout_seconds=self._timeout)
        except (NatsError, TimeoutError):
            pass  # no replica runs it (yet)
        else:
            return True
        record = await self._records.get(request_id)
        if record is None or record.user_id != user_id:
            return False
        last = await last_chunk(self._broker, subjects.chat_chunks_request_wildcard(request_id))
        if last is not None and is_terminal(last):
            return False
        await self._records.mark_stop(request_id)
        await self._broker.publish(command, subject)
        return True
