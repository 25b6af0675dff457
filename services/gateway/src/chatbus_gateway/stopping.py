"""`chat.stop`: ask whichever inference replica streams the turn to stop it."""

from __future__ import annotations

from uuid import UUID

from chatbus_contracts import subjects
from chatbus_contracts.commands import StopGeneration
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError


async def request_stop(
    broker: NatsBroker, request_id: UUID, user_id: str, timeout_seconds: float
) -> bool:
    """True if the owning replica acknowledged; False if no replica streams it for this user.

    The user id comes from the caller's token; the replica checks it against the turn,
    so nobody can stop another user's generation.
    """
    command = StopGeneration(request_id=request_id, user_id=user_id)
    try:
        await broker.request(
            command, subjects.chat_cancel_subject(request_id), timeout=timeout_seconds
        )
    except (NatsError, TimeoutError):
        return False
    return True
