"""Which try of a request this delivery is, and what the earlier tries left behind.

A request is delivered again when its replica died (no `in_progress` within the ack
wait) or handed it back while shutting down. Before anything else, each delivery reads
the newest chunk stored for the request:

    nothing, or an unfinished try older than this one ──▶ GO: chunks continue after its
                                                          seq; a retry opens with a
                                                          restart chunk
    a terminal chunk (end, error, stopped)           ──▶ ENDED: the answer and its events
                                                          are stored; just ack
    a chunk of a newer try                           ──▶ STALE: this delivery sat in a
                                                          queue too long and another
                                                          replica owns the request
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from chatbus_contracts.chunks import RestartChunk, is_terminal
from chatbus_contracts.commands import GenerateReply
from chatbus_runtime.chunks import last_chunk, publish_chunk
from faststream.nats import NatsBroker, NatsMessage

logger = logging.getLogger(__name__)


class Verdict(Enum):
    """Whether a delivery should generate."""

    GO = "go"
    ENDED = "ended"
    STALE = "stale"


@dataclass(frozen=True)
class LookBack:
    """What the stored chunks say about this delivery; `seq` is the last one stored (0: none)."""

    verdict: Verdict
    seq: int


def attempt_of(msg: NatsMessage) -> int:
    """This delivery's number (1 for the first) from the JetStream metadata."""
    return int(msg.raw_message.metadata.num_delivered)


async def look_back(broker: NatsBroker, request: GenerateReply, attempt: int) -> LookBack:
    """Read the newest stored chunk of the request and judge this attempt by it."""
    last = await last_chunk(broker, request.reply_subject)
    if last is None:
        return LookBack(Verdict.GO, 0)
    if last.attempt > attempt:
        logger.warning("request %s: attempt %d is stale", request.request_id, attempt)
        return LookBack(Verdict.STALE, last.seq)
    if is_terminal(last):
        return LookBack(Verdict.ENDED, last.seq)
    return LookBack(Verdict.GO, last.seq)


async def announce_restart(
    broker: NatsBroker, request: GenerateReply, attempt: int, seq: int
) -> None:
    """Tell the readers that the answer starts over with this attempt, at `seq`."""
    logger.info("request %s: restarting as attempt %d", request.request_id, attempt)
    chunk = RestartChunk(request_id=request.request_id, seq=seq, attempt=attempt)
    await publish_chunk(broker, chunk, request.reply_subject)
