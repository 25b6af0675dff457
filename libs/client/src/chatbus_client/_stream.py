"""One chat turn as the caller sees it: text deltas while it runs, a `Turn` once it ended.

A turn's frames may come twice after a reconnect (a resent `chat.send` replays from the
start, a `chat.resume` from `after_seq`); `ChatStream` keeps only what is new, so the
caller gets every piece of the answer exactly once and in order.

A `chat.restart` (the inference replica was lost and another one answers again) drops
the text so far, also pieces not read yet; the pieces that follow are the new answer
from its start, and `restarts` counts how often that happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from chatbus_contracts.common import TokenUsage
from chatbus_contracts.queries import MessageView
from chatbus_contracts.ws import (
    ChatAccepted,
    ChatDelta,
    ChatEnd,
    ChatError,
    ChatMessage,
    ChatRegenerate,
    ChatRestart,
    ChatResume,
    ChatSend,
    ChatStopped,
    ServerFrame,
)

from ._errors import ChatbusError

logger = logging.getLogger("chatbus_client")

TurnFrame = ChatSend | ChatRegenerate
Stopper = Callable[[UUID], Awaitable[None]]


@dataclass(frozen=True)
class Turn:
    """A finished turn: its ids, the whole answer, and how it ended.

    Exactly one of `end` (`chat.end`: usage, cost, model), `stopped` (`chat.stop` ended
    it) and `message` (the stored answer, when a resume came after the chunks had
    expired) says how.
    """

    request_id: UUID
    conversation_id: UUID
    user_message_id: UUID
    assistant_message_id: UUID
    text: str
    end: ChatEnd | None = None
    stopped: bool = False
    message: MessageView | None = None

    @property
    def finish_reason(self) -> str | None:
        """`stop`, `length`, ... from `chat.end`; `stopped` for a stopped turn."""
        if self.end is not None:
            return self.end.finish_reason
        if self.stopped:
            return "stopped"
        return self.message.finish_reason if self.message is not None else None

    @property
    def usage(self) -> TokenUsage | None:
        """Token counts, when the end frame or the stored message carried them."""
        if self.end is not None:
            return self.end.usage
        return self.message.usage if self.message is not None else None

    @property
    def cost_usd(self) -> Decimal | None:
        """The turn's cost in USD; None when unknown or the model has no price."""
        if self.end is not None:
            return Decimal(self.end.cost_usd) if self.end.cost_usd is not None else None
        return self.message.cost_usd if self.message is not None else None


class ChatStream:
    """A running turn: `async for text in stream` yields the answer's new text.

    The iteration ends after the last piece; a `chat.error` ends it by raising
    `ChatbusError`. Then `stream.result` is the `Turn`. `await stream` waits for the
    end without reading the pieces and returns the `Turn` too.

    When `restarts` has grown since the previous piece, the answer started over: drop
    what you showed of it, the piece in hand is the new answer's first.
    """

    def __init__(self, frame: TurnFrame, stopper: Stopper | None = None) -> None:
        self.frame = frame
        self._stopper = stopper
        self._accepted: ChatAccepted | None = None
        # Set by chat.accepted, or by an error that came before it.
        self._acceptance_known = asyncio.Event()
        self._last_seq = 0
        self._attempt = 1
        self._restarts = 0
        self._parts: list[str] = []
        self._unread: deque[str] = deque()
        self._changed = asyncio.Event()
        self._outcome: Turn | ChatbusError | None = None

    def __repr__(self) -> str:
        state = "running" if self._outcome is None else type(self._outcome).__name__
        return f"ChatStream(id={self.id!r}, request_id={self.request_id}, {state})"

    # --- what the caller reads ------------------------------------------------------

    @property
    def id(self) -> str:
        """The client-generated frame id (the turn's idempotency key)."""
        return self.frame.id

    @property
    def request_id(self) -> UUID | None:
        """The turn's request id, once `chat.accepted` arrived."""
        return self._accepted.request_id if self._accepted else None

    @property
    def conversation_id(self) -> UUID | None:
        """The conversation (a new one for `conversation_id=None`), once accepted."""
        return self._accepted.conversation_id if self._accepted else None

    @property
    def last_seq(self) -> int:
        """The `seq` of the newest delta delivered (0 before the first)."""
        return self._last_seq

    @property
    def text(self) -> str:
        """The answer so far (the whole answer once the turn is done)."""
        return "".join(self._parts)

    @property
    def restarts(self) -> int:
        """How often the answer started over (`chat.restart`): 0 for most turns."""
        return self._restarts

    @property
    def done(self) -> bool:
        """Whether the turn ended (by its end, a stop or an error)."""
        return self._outcome is not None

    @property
    def result(self) -> Turn:
        """The finished turn; raises its `ChatbusError` if it failed, RuntimeError if running."""
        if self._outcome is None:
            raise RuntimeError("the turn has not finished yet")
        if isinstance(self._outcome, ChatbusError):
            raise self._outcome
        return self._outcome

    async def accepted(self) -> ChatAccepted:
        """Wait for `chat.accepted`; raises the turn's `ChatbusError` if it was refused."""
        await self._acceptance_known.wait()
        if self._accepted is None:
            raise self._error_or(RuntimeError("the turn ended without chat.accepted"))
        return self._accepted

    async def stop(self) -> None:
        """Stop the generation (after it was accepted); the turn then ends as stopped."""
        if self._stopper is None:
            raise RuntimeError("this stream is not attached to a client")
        accepted = await self.accepted()
        if not self.done:
            await self._stopper(accepted.request_id)

    async def collect(self) -> Turn:
        """Wait for the end of the turn (reading any unread text) and return it."""
        async for _ in self:
            pass
        return self.result

    def __await__(self) -> Generator[object, None, Turn]:
        return self.collect().__await__()

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        while not self._unread:
            if isinstance(self._outcome, ChatbusError):
                raise self._outcome
            if self._outcome is not None:
                raise StopAsyncIteration
            self._changed.clear()
            await self._changed.wait()
        return self._unread.popleft()

    # --- what the client's socket feeds in ------------------------------------------

    def _opening_frame(self) -> TurnFrame | ChatResume:
        """What to send on a new socket: the turn itself, or a resume once it was accepted."""
        if self._accepted is None:
            return self.frame  # idempotent: the gateway answers a resend like the first
        return ChatResume(request_id=self._accepted.request_id, after_seq=self._last_seq)

    def _feed(self, frame: ServerFrame) -> None:
        """Apply one frame of this turn; repeated frames change nothing."""
        if self._outcome is not None:
            return
        if isinstance(frame, ChatAccepted):
            if self._accepted is None:
                self._accepted = frame
                self._acceptance_known.set()
        elif isinstance(frame, ChatDelta):
            if frame.seq <= self._last_seq:
                return  # already delivered: a replay after a reconnect
            if frame.seq != self._last_seq + 1:
                logger.warning(
                    "turn %s: delta %d after %d", frame.request_id, frame.seq, self._last_seq
                )
            self._last_seq = frame.seq
            self._deliver(frame.text)
        elif isinstance(frame, ChatRestart):
            self._restart(frame)
        elif isinstance(frame, ChatEnd):
            self._finish(end=frame)
        elif isinstance(frame, ChatStopped):
            self._finish(stopped=True)
        elif isinstance(frame, ChatMessage):
            self._finish_from_stored(frame.message)
        elif isinstance(frame, ChatError):
            retry_after = frame.retry_after_ms / 1000 if frame.retry_after_ms is not None else None
            error = ChatbusError(
                frame.code, frame.message, retryable=frame.retryable, retry_after=retry_after
            )
            self._fail(error)

    def _fail(self, error: ChatbusError) -> None:
        """End the turn with `error` (raised to whoever reads it)."""
        if self._outcome is None:
            self._outcome = error
            self._changed.set()
            self._acceptance_known.set()

    def _error_or(self, fallback: Exception) -> Exception:
        return self._outcome if isinstance(self._outcome, ChatbusError) else fallback

    def _restart(self, frame: ChatRestart) -> None:
        """Drop the answer so far; a restart of an attempt seen already is a repeat."""
        if frame.attempt <= self._attempt:
            return
        self._attempt = frame.attempt
        self._restarts += 1
        self._last_seq = max(self._last_seq, frame.seq)
        self._parts.clear()
        self._unread.clear()
        self._changed.set()

    def _deliver(self, text: str) -> None:
        if text:
            self._parts.append(text)
            self._unread.append(text)
            self._changed.set()

    def _finish_from_stored(self, message: MessageView) -> None:
        """The chunks expired: the rest of the answer is what the stored message adds."""
        delivered = self.text
        if not message.content.startswith(delivered):
            logger.warning("turn %s: stored answer differs from the streamed part", self.id)
        self._deliver(message.content[len(delivered) :])
        self._finish(message=message)

    def _finish(
        self,
        *,
        end: ChatEnd | None = None,
        stopped: bool = False,
        message: MessageView | None = None,
    ) -> None:
        accepted = self._accepted
        if accepted is None:  # frames are routed by request id, known from chat.accepted
            raise RuntimeError("a turn cannot end before it was accepted")
        self._outcome = Turn(
            request_id=accepted.request_id,
            conversation_id=accepted.conversation_id,
            user_message_id=accepted.user_message_id,
            assistant_message_id=accepted.assistant_message_id,
            text=self.text,
            end=end,
            stopped=stopped,
            message=message,
        )
        self._changed.set()
