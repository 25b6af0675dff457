"""Which try of a request this delivery is, and what the earlier tries left behind.

A request is delivered again when its replica died (no `in_progress` within the ack
wait) or handed it back while shutting down. Before anything else, each delivery reads
the newest chunk stored for the request:

    nothing, or an unfinished try older than this one ──▶ GO: chunks continue after its
                                                          seq; a retry opens with a
                                                          restart chunk (unless the
                                                          answer was stored:
                                                          end_with_stored)
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

from chatbus_contracts.chunks import EndChunk, ReplyChunk, RestartChunk, StoppedChunk, is_terminal
from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.common import TokenUsage
from chatbus_contracts.queries import MessageView
from chatbus_runtime.bus import publish_event
from chatbus_runtime.chunks import ChunkSender, last_chunk
from faststream.nats import NatsBroker
from nats.aio.msg import Msg

from .billing import usage_recorded

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


def attempt_of(msg: Msg) -> int:
    """This delivery's number (1 for the first) from the JetStream metadata."""
    return int(msg.metadata.num_delivered)


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


async def end_with_stored(
    broker: NatsBroker,
    sender: ChunkSender,
    request: GenerateReply,
    answer: MessageView,
    seq: int,
    attempt: int,
) -> None:
    """End a turn whose answer an earlier try stored but did not end (it died first).

    Its chunks are in the stream; the bill is published again (deduplicated by its
    derived id), then the terminal chunk as `attempt`, the try that streamed the answer.
    """
    logger.warning("request %s: ending with the answer already stored", request.request_id)
    usage = answer.usage or TokenUsage(prompt_tokens=0, completion_tokens=0)
    model, provider = answer.model or "", answer.provider or ""
    finish_reason = answer.finish_reason or "stop"
    recorded = usage_recorded(request, provider, model, usage, finish_reason, answer.latency_ms)
    await publish_event(broker, recorded)
    terminal: ReplyChunk = StoppedChunk(
        request_id=request.request_id, seq=seq, attempt=attempt, message_id=answer.id
    )
    if finish_reason != "stopped":
        terminal = EndChunk(
            request_id=request.request_id,
            seq=seq,
            attempt=attempt,
            message_id=answer.id,
            finish_reason=finish_reason,
            usage=usage,
            cost_usd=answer.cost_usd,
            model=model,
            provider=provider,
            latency_ms=answer.latency_ms or 0,
        )
    await sender.send_last(terminal)
