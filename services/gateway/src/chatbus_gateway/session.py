"""One authenticated WebSocket: reads frames, runs turns, relays chunks in order.

While the gateway drains (SIGTERM, drain.py) new turns and resumes are refused with a
retryable `unavailable`; the socket is closed with 1012 once nothing streams on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any
from uuid import UUID

from chatbus_contracts.chunks import ReplyChunk
from chatbus_contracts.common import Model
from chatbus_contracts.errors import CLOSE_SERVICE_RESTART, ErrorCode
from chatbus_contracts.ws import (
    ChatError,
    ChatMessage,
    ChatRegenerate,
    ChatResume,
    ChatSend,
    ChatStop,
    Ping,
    Pong,
)
from fastapi import WebSocket, WebSocketDisconnect
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from opentelemetry.trace import Tracer

from .auth import Identity
from .drain import Drain
from .frames import BadFrame, chunk_frame, parse_client_frame
from .replay import turn_chunks
from .replies import ReplyRouter
from .resume import Resumer
from .stopping import Stopper
from .turns import TurnAcceptor, TurnRefused

logger = logging.getLogger(__name__)


class ChatSession:
    """Frames are handled one by one; each turn streams in its own task."""

    def __init__(
        self,
        websocket: WebSocket,
        identity: Identity,
        acceptor: TurnAcceptor,
        router: ReplyRouter,
        broker: NatsBroker,
        resumer: Resumer,
        tracer: Tracer,
        stopper: Stopper,
        drain: Drain,
    ) -> None:
        self._websocket = websocket
        self._identity = identity
        self._user_id = identity.user_id
        self._acceptor = acceptor
        self._router = router
        self._broker = broker
        self._resumer = resumer
        self._tracer = tracer
        self._stopper = stopper
        self._drain = drain
        self._send_lock = asyncio.Lock()
        self._turns: set[asyncio.Task[None]] = set()

    @property
    def streaming(self) -> bool:
        """Whether a turn or a resume is being relayed on this socket."""
        return bool(self._turns)

    async def close_for_restart(self) -> None:
        """Draining: stop relaying and close with 1012; the client resumes elsewhere."""
        for task in self._turns:
            task.cancel()
        async with self._send_lock:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self._websocket.close(CLOSE_SERVICE_RESTART, "the gateway is restarting")

    async def send(self, frame: Model) -> None:
        """Write one frame; writes from concurrent turns never interleave."""
        async with self._send_lock:
            await self._websocket.send_text(frame.model_dump_json())

    async def run(self) -> None:
        """Serve frames until the client goes away.

        A disconnect only stops relaying: generation goes on and is stored.
        """
        try:
            while True:
                text = await self._websocket.receive_text()
                await self._handle(text)
        except WebSocketDisconnect:
            pass
        finally:
            for task in self._turns:
                task.cancel()

    async def _handle(self, text: str) -> None:
        try:
            frame = parse_client_frame(text)
        except BadFrame as bad:
            await self.send(bad.error)
            return
        if isinstance(frame, ChatSend | ChatRegenerate | ChatResume) and self._drain.draining:
            await self.send(_draining(frame))
        elif isinstance(frame, ChatSend | ChatRegenerate):
            self._spawn(self._turn(frame))
        elif isinstance(frame, ChatResume):
            self._spawn(self._resume(frame))
        elif isinstance(frame, Ping):
            await self.send(Pong())
        elif isinstance(frame, ChatStop):
            await self._stop(frame)
        else:
            await self.send(
                ChatError(code=ErrorCode.INVALID_FRAME, message="already authenticated")
            )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._turns.add(task)
        task.add_done_callback(self._turns.discard)

    async def _resume(self, resume: ChatResume) -> None:
        """The rest of a turn after `after_seq`, from any gateway, then its live tail."""
        try:
            found = await self._resumer.locate(self._user_id, resume.request_id, resume.after_seq)
        except (NatsError, TimeoutError):
            await self.send(
                _unavailable(resume.request_id, "could not look the request up; resume again")
            )
            return
        if found is None:
            await self.send(_not_found(resume.request_id, "no turn of yours with this request id"))
        elif isinstance(found, ChatMessage):
            await self.send(found)
        else:
            await self._relay(found)

    async def _stop(self, stop: ChatStop) -> None:
        """The `chat.stopped` frame follows on the turn's own stream."""
        try:
            stopping = await self._stopper.stop(stop.request_id, self._user_id)
        except (NatsError, TimeoutError):
            await self.send(
                _unavailable(stop.request_id, "the stop could not be recorded; stop again")
            )
            return
        if not stopping:
            await self.send(
                _not_found(stop.request_id, "no generation with this request id is running")
            )

    async def _turn(self, send: ChatSend | ChatRegenerate) -> None:
        with self._tracer.start_as_current_span(
            "chat.turn", attributes={"chatbus.user_id": self._user_id}
        ):
            try:
                turn = await self._acceptor.accept(self._identity, send)
            except TurnRefused as refused:
                await self.send(
                    ChatError(
                        id=send.id,
                        code=refused.code,
                        message=refused.message,
                        retryable=refused.retryable,
                        retry_after_ms=refused.retry_after_ms,
                    )
                )
                return
            except Exception:
                logger.exception("accepting %s failed", send.id)
                await self.send(
                    ChatError(
                        id=send.id,
                        code=ErrorCode.INTERNAL_ERROR,
                        message="internal error",
                        retryable=True,
                    )
                )
                return
            request_id = turn.frame.request_id
            try:
                await self.send(turn.frame)
                await self._relay(
                    turn_chunks(
                        self._broker,
                        self._router,
                        request_id,
                        turn.queue,
                        duplicate=turn.duplicate,
                    )
                )
            finally:
                self._router.close(request_id, turn.queue)

    async def _relay(self, chunks: AsyncIterator[ReplyChunk]) -> None:
        """Send in-order chunks as frames (see `replay.in_order`)."""
        async for chunk in chunks:
            await self.send(chunk_frame(chunk))


def _unavailable(request_id: UUID, message: str) -> ChatError:
    """A retryable error about one request: the client sends its frame again."""
    return ChatError(
        request_id=request_id, code=ErrorCode.UNAVAILABLE, message=message, retryable=True
    )


def _not_found(request_id: UUID, message: str) -> ChatError:
    return ChatError(request_id=request_id, code=ErrorCode.NOT_FOUND, message=message)


def _draining(frame: ChatSend | ChatRegenerate | ChatResume) -> ChatError:
    """The answer to a new turn or resume while the gateway drains: send it again elsewhere."""
    message = "this gateway is shutting down; send it again after reconnecting"
    if isinstance(frame, ChatResume):
        return _unavailable(frame.request_id, message)
    return ChatError(id=frame.id, code=ErrorCode.UNAVAILABLE, message=message, retryable=True)
