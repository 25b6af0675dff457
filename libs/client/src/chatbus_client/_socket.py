"""The client's one WebSocket: every turn runs on it, and it comes back when it drops.

    open ──(socket drops, any close code but 4401)──▶ reconnecting, with backoff
      ▲                                                   │
      └── resend each turn not yet accepted (same `id`), ◀┘ connected again
          `chat.resume` each accepted one (`after_seq` = last seq seen)

    reconnecting ──(every attempt failed)──▶ the unfinished turns fail with
                                             `connection_lost`; the next turn tries again
    any ──(close 4401)──▶ every turn, now and later, fails with `unauthenticated`

A closed socket never cancels a generation on the server, so nothing is lost while
the client is away; `ChatStream` drops what a resend or resume delivers twice.

A retryable `unavailable` for a turn not accepted yet (a draining gateway, a backend
that did not answer) or for a resume is asked again after a while, with the reconnect
backoff, on whichever socket is open then; a `chat.restart` is the stream's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any
from uuid import UUID

from chatbus_contracts.common import Model
from chatbus_contracts.errors import CLOSE_UNAUTHENTICATED, ErrorCode
from chatbus_contracts.ws import (
    ChatAccepted,
    ChatError,
    ChatResume,
    ChatStop,
    Ping,
    Pong,
    ServerFrame,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ._errors import CLOSED, CONNECTION_FAILED, CONNECTION_LOST, UNAUTHENTICATED, ChatbusError
from ._frames import ConversationFrame, parse_server_frame
from ._live import ConversationEvents
from ._reconnect import Reconnect
from ._stream import ChatStream

logger = logging.getLogger("chatbus_client")

# A `chat.message` carries a whole stored answer; the websockets default (1 MiB) is tight.
MAX_FRAME_BYTES = 16 * 1024 * 1024
# What a failed connection attempt raises (anything else is a bug or a bad URL).
_DIAL_ERRORS = (OSError, TimeoutError, InvalidHandshake)


class TurnSocket:
    """Runs turns on one WebSocket to `/v1/ws` and keeps it connected."""

    def __init__(
        self, ws_url: str, token: str, reconnect: Reconnect, *, open_timeout: float = 10.0
    ) -> None:
        self._ws_url = ws_url
        self._headers = {"Authorization": f"Bearer {token}"}
        self._reconnect = reconnect
        self._open_timeout = open_timeout
        self._ws: ClientConnection | None = None
        # Bumped on every new connection; a turn's opening frame is sent once per connection.
        self._generation = 0
        self._sent_on: dict[str, int] = {}
        self._turns: dict[str, ChatStream] = {}
        self._by_request: dict[UUID, ChatStream] = {}
        self._resuming: dict[str, int] = {}  # turn id -> `unavailable` answers so far
        self._stopping: set[UUID] = set()
        self._live: set[ConversationEvents] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._wanted = asyncio.Event()  # new work after the reconnect attempts ran out
        self._pong: asyncio.Event | None = None
        self._fatal: ChatbusError | None = None
        self._closed = False
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        """Whether a socket is open right now."""
        return self._ws is not None

    async def open(self) -> None:
        """Connect and check the token with a ping (one attempt: a bad URL fails fast)."""
        if self._supervisor is not None:
            return
        try:
            ws = await self._dial()
        except (*_DIAL_ERRORS, InvalidURI) as error:
            raise ChatbusError(
                CONNECTION_FAILED, f"cannot connect to {self._ws_url}: {error}"
            ) from error
        try:
            await self._handshake(ws)
        except BaseException:
            await ws.close()
            raise
        self._attach(ws)
        self._supervisor = asyncio.create_task(self._supervise(ws))

    async def close(self) -> None:
        """Close the socket; turns still running fail with `closed`."""
        self._closed = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for task in list(self._tasks):
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        self._fail_all(ChatbusError(CLOSED, "the client was closed"))
        for events in list(self._live):
            events.close()

    def submit(self, turn: ChatStream) -> None:
        """Start `turn`: send it now if connected, else as soon as the socket is back."""
        if self._supervisor is None and not self._closed:
            raise RuntimeError("connect first: use `async with ChatbusClient(...)`")
        if turn.id in self._turns:
            raise ValueError(f"a turn with id {turn.id!r} is already running")
        if self._closed or self._fatal is not None:
            turn._fail(self._fatal or ChatbusError(CLOSED, "the client is closed"))
            return
        self._turns[turn.id] = turn
        self._wanted.set()
        self._spawn(self._open_turn(turn))

    async def stop(self, request_id: UUID) -> None:
        """Send `chat.stop`; for a turn of this socket, again after a reconnect if needed."""
        turn = self._by_request.get(request_id)
        if turn is not None:
            self._stopping.add(request_id)  # its not_found is no failure of the turn
        if self._ws is None and turn is None:
            raise ChatbusError(CONNECTION_LOST, "not connected; stop again", retryable=True)
        await self._send(ChatStop(request_id=request_id))

    def subscribe(self) -> ConversationEvents:
        """A new iterator of the live `conversation.*` frames."""
        events = ConversationEvents(self._live.discard)
        if self._closed:
            events.close()
        else:
            self._live.add(events)
        return events

    # --- connecting -----------------------------------------------------------------

    async def _dial(self) -> ClientConnection:
        return await connect(
            self._ws_url,
            additional_headers=self._headers,
            open_timeout=self._open_timeout,
            max_size=MAX_FRAME_BYTES,
        )

    async def _handshake(self, ws: ClientConnection) -> None:
        """Ping and wait for the pong: a refused token closes the socket (4401) first."""
        self._pong = asyncio.Event()
        try:
            async with asyncio.timeout(self._open_timeout):
                await ws.send(Ping().model_dump_json())
                while not self._pong.is_set():
                    self._dispatch(await ws.recv())
        except ConnectionClosed as error:
            if ws.close_code == CLOSE_UNAUTHENTICATED:
                raise ChatbusError(UNAUTHENTICATED, ws.close_reason or "token refused") from error
            raise ChatbusError(
                CONNECTION_FAILED, f"the gateway closed the socket: {error}"
            ) from error
        except TimeoutError as error:
            raise ChatbusError(CONNECTION_FAILED, "no pong from the gateway") from error
        finally:
            self._pong = None

    async def _supervise(self, ws: ClientConnection) -> None:
        """Run the socket; a bug in it fails the turns instead of leaving them waiting."""
        try:
            await self._keep_connected(ws)
        except Exception as error:
            logger.exception("the client's socket task failed")
            self._fatal = ChatbusError(ErrorCode.INTERNAL_ERROR, f"client bug: {error!r}")
            self._fail_all(self._fatal)

    async def _keep_connected(self, ws: ClientConnection) -> None:
        """Read frames; when the socket drops, reconnect and pick every turn up again."""
        current: ClientConnection | None = ws
        while True:
            if current is not None:
                await self._read(current)
                self._ws = None
                if current.close_code == CLOSE_UNAUTHENTICATED:
                    reason = current.close_reason or "token refused"
                    self._fatal = ChatbusError(UNAUTHENTICATED, reason)
                    self._fail_all(self._fatal)
                    return
                logger.info("socket closed (code %s); reconnecting", current.close_code)
            elif not self._turns:
                # The attempts ran out: wait for a turn before trying again.
                self._wanted.clear()
                await self._wanted.wait()
            current = await self._reconnected()

    async def _reconnected(self) -> ClientConnection | None:
        """A new socket with every unfinished turn re-sent, or None after the last attempt."""
        last_error: Exception | None = None
        for delay in self._reconnect.delays():
            await asyncio.sleep(delay)
            try:
                ws = await self._dial()
            except _DIAL_ERRORS as error:
                last_error = error
                logger.debug("reconnect attempt failed: %s", error)
                continue
            self.reconnects += 1
            self._attach(ws)
            for turn in list(self._turns.values()):
                await self._open_turn(turn)
            return ws
        self._fail_all(
            ChatbusError(
                CONNECTION_LOST,
                f"could not reconnect after {self._reconnect.attempts} attempts: {last_error}",
                retryable=True,
            )
        )
        return None

    def _attach(self, ws: ClientConnection) -> None:
        self._generation += 1
        self._ws = ws

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                self._dispatch(text)

    # --- sending --------------------------------------------------------------------

    async def _open_turn(self, turn: ChatStream) -> None:
        """Send the turn's frame (or its resume) on the current socket, once per socket."""
        if turn.done or self._ws is None or self._sent_on.get(turn.id) == self._generation:
            return
        self._sent_on[turn.id] = self._generation
        frame = turn._opening_frame()
        if isinstance(frame, ChatResume):
            self._resuming.setdefault(turn.id, 0)
        await self._send(frame)
        if isinstance(frame, ChatResume) and frame.request_id in self._stopping:
            await self._send(ChatStop(request_id=frame.request_id))

    async def _send(self, frame: Model) -> None:
        """Write one frame; a drop now is handled by the reconnect, which resends."""
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame.model_dump_json(exclude_none=True))

    async def _resume_later(self, turn: ChatStream, error: ChatError) -> None:
        """The gateway could not take or look up the turn now: ask again after a while."""
        failures = self._resuming[turn.id] = self._resuming.get(turn.id, 0) + 1
        delays = list(self._reconnect.delays())
        if failures >= len(delays):
            self._feed(turn, error)
            return
        await asyncio.sleep(max(delays[failures], self._reconnect.first_delay))
        self._sent_on.pop(turn.id, None)
        await self._open_turn(turn)

    # --- receiving ------------------------------------------------------------------

    def _dispatch(self, text: str | bytes) -> None:
        frame = parse_server_frame(text)
        if frame is None:
            return
        if isinstance(frame, Pong):
            if self._pong is not None:
                self._pong.set()
        elif isinstance(frame, ConversationFrame):
            for events in list(self._live):
                events._push(frame)
        elif isinstance(frame, ChatAccepted):
            turn = self._turns.get(frame.id)
            if turn is not None:
                self._by_request[frame.request_id] = turn
                self._feed(turn, frame)
        elif isinstance(frame, ChatError):
            turn = self._error_turn(frame)
            if turn is not None and self._turn_fails(turn, frame):
                self._feed(turn, frame)
        else:
            turn = self._by_request.get(frame.request_id)
            if turn is not None:
                self._resuming.pop(turn.id, None)  # the resume is answered
                self._feed(turn, frame)

    def _error_turn(self, error: ChatError) -> ChatStream | None:
        """The turn a `chat.error` belongs to (by request id, else by frame id)."""
        if error.request_id is not None:
            turn = self._by_request.get(error.request_id)
        else:
            turn = self._turns.get(error.id) if error.id is not None else None
        if turn is None:  # e.g. a late stop of a turn that has ended since
            logger.info("chat.error %s: %s", error.code, error.message)
        return turn

    def _turn_fails(self, turn: ChatStream, error: ChatError) -> bool:
        """Whether `error` ends the turn, or only concerns a stop or a resume of it."""
        request_id = turn.request_id
        if request_id in self._stopping and error.code in (
            ErrorCode.NOT_FOUND,  # the stop came after the generation ended
            ErrorCode.UNAVAILABLE,  # the stop could not be recorded: the turn goes on
        ):
            logger.info("stop of %s: %s (%s)", request_id, error.code, error.message)
            return False
        opening = turn.id in self._resuming or turn.request_id is None
        if opening and error.code == ErrorCode.UNAVAILABLE and error.retryable:
            self._spawn(self._resume_later(turn, error))
            return False
        return True

    def _feed(self, turn: ChatStream, frame: ServerFrame) -> None:
        turn._feed(frame)
        if turn.done:
            self._forget(turn)

    def _forget(self, turn: ChatStream) -> None:
        self._turns.pop(turn.id, None)
        self._sent_on.pop(turn.id, None)
        self._resuming.pop(turn.id, None)
        if turn.request_id is not None:
            self._by_request.pop(turn.request_id, None)
            self._stopping.discard(turn.request_id)

    def _fail_all(self, error: ChatbusError) -> None:
        for turn in list(self._turns.values()):
            turn._fail(error)
            self._forget(turn)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
