"""The turns a replica is running: found by `chat.stop`, handed back when it shuts down.

PREPARING   earlier attempts, history, user message   a stop is remembered and
    │                                                 honoured before generating;
    │                                                 a hand-back cancels
GENERATING  streaming from the provider               a stop or a hand-back cancels
    │
FINISHING   publishing the answer and its events      nothing interrupts it
    │
TITLING     a title for a new conversation            a hand-back cancels (the
                                                      answer is stored already)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any
from uuid import UUID

logger = logging.getLogger(__name__)


class Outcome(Enum):
    """What the consumer does with the request message once a delivery of it ran."""

    ACK = "ack"  # the turn ended: answered, stopped, failed, or had ended before
    HAND_BACK = "hand_back"  # nak at once: another replica runs it again
    DROP = "drop"  # a newer delivery owns the request: neither ack nor nak


class Phase(Enum):
    """Where a running turn is (see the module docstring)."""

    PREPARING = "preparing"
    GENERATING = "generating"
    FINISHING = "finishing"
    TITLING = "titling"


@dataclass
class RunningTurn:
    """One turn this replica runs, and what has been asked of it."""

    user_id: str
    task: asyncio.Task[Any]
    phase: Phase = Phase.PREPARING
    stop_requested: bool = False
    handed_back: bool = False

    def stop(self) -> bool:
        """`chat.stop`: False once the answer is being stored (nothing left to stop)."""
        if self.phase in (Phase.FINISHING, Phase.TITLING):
            return False
        self.stop_requested = True
        if self.phase is Phase.GENERATING:
            self.task.cancel()
        return True

    def hand_back(self) -> None:
        """Shutting down: give the request back (or skip the title) unless it is being stored."""
        if self.phase is not Phase.FINISHING:
            self.handed_back = True
            self.task.cancel()


class RunningTurns:
    """The replica's running turns by request id, and its drain on shutdown."""

    def __init__(self) -> None:
        self._turns: dict[UUID, RunningTurn] = {}
        self.draining = False

    def start(self, request_id: UUID, user_id: str) -> RunningTurn:
        """Register the turn the current task runs."""
        task = asyncio.current_task()
        assert task is not None
        running = self._turns[request_id] = RunningTurn(user_id, task)
        return running

    def end(self, request_id: UUID, running: RunningTurn) -> None:
        """Forget the turn (if a later delivery of it has not taken its place)."""
        if self._turns.get(request_id) is running:
            del self._turns[request_id]

    def stop(self, request_id: UUID, user_id: str) -> bool:
        """Stop a turn running here; False if it is not here, not the user's, or storing."""
        running = self._turns.get(request_id)
        return running is not None and running.user_id == user_id and running.stop()

    async def drain(self, seconds: float) -> None:
        """Take no new turns, let the running ones finish for `seconds`, hand back the rest."""
        self.draining = True
        if self._turns:
            logger.info("draining %d turns for up to %.0f s", len(self._turns), seconds)
            await asyncio.wait([turn.task for turn in self._turns.values()], timeout=seconds)
        left = list(self._turns.values())
        for turn in left:
            turn.hand_back()
        if left:
            logger.info("handing back %d turns", len(left))
            await asyncio.wait([turn.task for turn in left])
