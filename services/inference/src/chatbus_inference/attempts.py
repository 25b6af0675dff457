"""Which try of a request this delivery is, and what the earlier tries left behind.

A request is delivered again when its replica died (no `in_progress` within the ack
wait) or handed it back while shutting down. Before anything else, each delivery reads
the newest chunk stored for the request:

    nothing, or an unfinished try older than this one ──▶ GO: chunks continue after its
                                                          seq; a retry opens with a
                                                          restart chunk (unless the
                                                          answer was stored: turn.py)
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
from chatbus_runtime.chunks import ChunkSender, last_chunk
from faststream.nats import NatsBroker, NatsMessage

logger = logging.getLogger(__name__)


class Verdict(Enum):
    """Whether a delivery should generate."""

    GO = "go"
    ENDED = "ended"
    STALE = "stale"


@dataclass(frozen=True)
class LookBack:
    """What the stored chunks say about this delivery: the last one's `seq` and `attempt`.

    Both are 0 when nothing is stored.
    """

    verdict: Verdict
    seq: int = 0
    attempt: int = 0


def attempt_of(msg: NatsMessage) -> int:
    """This delivery's number (1 for the first) from the JetStream metadata."""
    return int(msg.raw_message.metadata.num_delivered)


async def look_back(broker: NatsBroker, request: GenerateReply, attempt: int) -> LookBack:
    """Read the newest stored chunk of the request and judge this attempt by it."""
    last = await last_chunk(broker, request.reply_subject)
    if last is None:
        return LookBack(Verdict.GO)
    verdict = Verdict.ENDED if is_terminal(last) else Verdict.GO
    if last.attempt > attempt:
        logger.warning("request %s: attempt %d is stale", request.request_id, attempt)
        verdict = Verdict.STALE
    return LookBack(verdict, last.seq, last.attempt)


async def announce_restart(
    sender: ChunkSender, request: GenerateReply, attempt: int, seq: int
) -> None:
    """Tell the readers that the answer starts over with this attempt, at `seq`."""
    logger.info("request %s: restarting as attempt %d", request.request_id, attempt)
    await sender.send(RestartChunk(request_id=request.request_id, seq=seq, attempt=attempt))
