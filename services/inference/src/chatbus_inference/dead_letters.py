"""A dead-lettered chat request still ends its turn: `message.failed` and an error chunk.

Runs in the replica that filed the dead letter (the one that failed last, or the one
that heard JetStream's advisory). The event id is the one a failed turn publishes
(`derived_id(request_id, "message.failed")`), so a turn that already failed is not
announced twice; a turn whose stored chunks already end is left alone. The error chunk
continues the newest attempt's chunks, so readers take it as that attempt's end.
"""

from __future__ import annotations

import logging

from chatbus_contracts.chunks import ErrorChunk, is_terminal
from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.deadletters import DeadLetter
from chatbus_contracts.errors import ErrorCode
from chatbus_runtime.bus import publish_event
from chatbus_runtime.chunks import ChunkSender, last_chunk
from faststream.nats import NatsBroker
from pydantic import ValidationError

from .failures import message_failed

logger = logging.getLogger(__name__)


class DeadLetteredTurns:
    """Tells the client and the event stream that a dead-lettered request will not be answered."""

    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    async def end_turn(self, letter: DeadLetter, payload: bytes) -> None:
        """Publish `message.failed` and the closing error chunk of the request in `payload`."""
        try:
            request = GenerateReply.model_validate_json(payload)
        except ValidationError:
            logger.error("dead-lettered request %d is no GenerateReply", letter.stream_seq)
            return  # nobody to tell: the request never named its reply subject
        last = await last_chunk(self._broker, request.reply_subject)
        if last is not None and is_terminal(last):
            return  # the turn ended before it was given up on
        message = (
            f"the request failed on all {letter.deliveries} attempts and was set aside "
            "for an operator"
        )
        failed = message_failed(request, ErrorCode.DEAD_LETTERED, message)
        await publish_event(self._broker, failed)
        chunk = ErrorChunk(
            request_id=request.request_id,
            seq=last.seq + 1 if last is not None else 1,
            # The last attempt's: readers drop chunks of attempts older than the newest.
            attempt=last.attempt if last is not None else 1,
            code=ErrorCode.DEAD_LETTERED,
            message=message,
        )
        await ChunkSender(self._broker, request.reply_subject).send_last(chunk)
