"""A load of concurrent chat turns over real WebSockets, by clients that recover like a UI.

Each client is one user with one conversation: it sends a turn, reads it to its end,
sends the next one as a follow-up, until the load is stopped. A client

- sends the same `chat.send` again (same `id`) when it was refused with a retryable
  error or got no answer (the protocol's idempotency key);
- reconnects to the other gateway and sends `chat.resume {request_id, after_seq}`
  when its socket closes;
- when a turn has been silent for `silence_seconds`, looks at CHAT_CHUNKS: if the
  stream holds chunks the socket never delivered, the live stream *stalled* (noted,
  then resumed elsewhere); otherwise the turn is just waiting, and so does the client;
- with `drop_sockets`, drops its socket abruptly (no close frame) in the middle of every
  turn and resumes on the other gateway;
- with `resend_at_once`, sends every `chat.send` a second time at once on a socket to the
  other gateway and reads that copy to its end too.

Every reply of the emulators is `"Emulated reply to: " + content` (their default),
so what each turn must answer is known in advance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .bus import newest_chunk
from .processes import GATEWAYS, System
from .reading import RESUME_ERRORS, Reading

logger = logging.getLogger(__name__)

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")
# Answers to a `chat.send` after which a client sends the same frame again.
RETRY_SEND = ("unavailable", "rate_limited", "internal_error")
_BROKEN = (ConnectionClosed, InvalidHandshake, OSError, TimeoutError)


@dataclass(frozen=True)
class LoadOptions:
    """How many clients, how long their answers are, and how they misbehave."""

    clients: int = 8
    words: int = 30  # of each question; the answer is 3 tokens longer
    turns_per_conversation: int = 3  # then a new one: both kinds of turn under every fault
    silence_seconds: float = 15.0
    answer_seconds: float = 45.0  # for `chat.accepted`, before sending again elsewhere
    turn_deadline_seconds: float = 240.0
    drop_sockets: bool = False
    resend_at_once: bool = False


@dataclass
class Turn:
    """One turn as its client saw it."""

    client: int
    user: str
    send_id: str
    content: str
    conversation_id: str | None
    accepted: dict[str, Any] | None = None
    reading: Reading | None = None
    refusals: list[str] = field(default_factory=list)
    resumes: int = 0
    drops: int = 0
    stalls: list[str] = field(default_factory=list)
    copies: list[Reading] = field(default_factory=list)
    copies_accepted: list[dict[str, Any]] = field(default_factory=list)
    replay: Reading | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def frame(self) -> dict[str, Any]:
        """The `chat.send` frame, the same every time it is sent."""
        return {
            "type": "chat.send",
            "id": self.send_id,
            "conversation_id": self.conversation_id,
            "content": self.content,
        }

    @property
    def request_id(self) -> str | None:
        return None if self.accepted is None else str(self.accepted["request_id"])

    @property
    def expected_answer(self) -> str:
        """The emulator's reply to this question."""
        return f"Emulated reply to: {self.content}"


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def receive(ws: ClientConnection, within_seconds: float) -> dict[str, Any]:
    """The next frame that is not a live `conversation.*` notice."""
    async with asyncio.timeout(within_seconds):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if not frame["type"].startswith("conversation."):
                return frame


def _belongs(frame: dict[str, Any], request_id: str) -> bool:
    return str(frame.get("request_id")) == request_id


class Client:
    """One user on one socket at a time, switching gateways when it has to."""

    def __init__(
        self,
        system: System,
        js: JetStreamContext,
        index: int,
        scenario: str,
        options: LoadOptions,
    ) -> None:
        self.system = system
        self.js = js
        self.index = index
        self.scenario = scenario.split()[0]
        self.options = options
        self.user = f"s{self.scenario}-c{index}-{uuid.uuid4().hex[:6]}"
        self.gateway = index % len(GATEWAYS)
        self.turns: list[Turn] = []
        self._ws: ClientConnection | None = None

    # --- sockets -------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.system.token(self.user)}"}

    def _url(self, offset: int = 0) -> str:
        return self.system.ws_url(GATEWAYS[(self.gateway + offset) % len(GATEWAYS)])

    async def _socket(self) -> ClientConnection:
        """The open socket, or a new one (to the other gateway if one fails)."""
        while self._ws is None:
            try:
                self._ws = await connect(self._url(), additional_headers=self._headers())
            except _BROKEN as error:
                logger.info("client %d: connect failed (%s); other gateway", self.index, error)
                self.gateway += 1
                await asyncio.sleep(0.5)
        return self._ws

    async def _abandon(self, *, abrupt: bool = False) -> None:
        """Give up the socket and move to the other gateway."""
        ws, self._ws = self._ws, None
        self.gateway += 1
        if ws is None:
            return
        if abrupt:  # the network went away: no close frame
            ws.transport.abort()
        with contextlib.suppress(*_BROKEN):
            await asyncio.wait_for(ws.close(), 2.0)

    async def close(self) -> None:
        await self._abandon()

    # --- turns ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Turns, one after the other in one conversation, until `stop` is set."""
        conversation_id: str | None = None
        while not stop.is_set():
            number = len(self.turns) + 1
            words = " ".join(WORDS[(number + i) % len(WORDS)] for i in range(self.options.words))
            turn = Turn(
                client=self.index,
                user=self.user,
                send_id=f"s{self.scenario}-{self.index}-{number}",
                content=f"scenario {self.scenario} client {self.index} turn {number}: {words}",
                conversation_id=conversation_id,
            )
            self.turns.append(turn)
            try:
                async with asyncio.timeout(self.options.turn_deadline_seconds):
                    await self._run_turn(turn)
            except TimeoutError:
                turn.problems.append("the client gave up: no end within the turn deadline")
                await self._abandon()
            if turn.accepted is None:
                return  # refused for good: something is wrong, the verdict says what
            conversation_id = str(turn.accepted["conversation_id"])
            # Shifted by client, so some turns start conversations whenever a fault hits.
            if (number + self.index) % self.options.turns_per_conversation == 0:
                conversation_id = None

    async def _run_turn(self, turn: Turn) -> None:
        copy: asyncio.Task[None] | None = None
        try:
            while turn.accepted is None:
                ws = await self._socket()
                try:
                    await send(ws, turn.frame)
                    if self.options.resend_at_once and copy is None:
                        copy = asyncio.create_task(self._read_copy(turn, offset=1))
                    answer = await self._answer_to_send(ws, turn)
                except _BROKEN:
                    await self._abandon()
                    continue
                if answer["type"] == "chat.accepted":
                    turn.accepted = answer
                elif answer.get("retryable") or answer["code"] in RETRY_SEND:
                    turn.refusals.append(answer["code"])
                    await asyncio.sleep(1.0)
                else:
                    turn.problems.append(f"refused for good: {answer}")
                    return
            turn.reading = Reading(str(turn.accepted["request_id"]))
            await self._read_turn(turn, turn.reading)
            if copy is not None:
                await copy
        finally:
            if copy is not None and not copy.done():
                copy.cancel()
                turn.problems.append("the resent chat.send's answer did not end in time")

    async def _answer_to_send(self, ws: ClientConnection, turn: Turn) -> dict[str, Any]:
        """`chat.accepted` or `chat.error` for this `chat.send` (frames of others skipped)."""
        while True:
            frame = await receive(ws, self.options.answer_seconds)
            if frame.get("id") == turn.send_id:
                return frame

    async def _read_turn(self, turn: Turn, reading: Reading) -> None:
        """Read the turn to its end, resuming elsewhere whenever the socket fails it."""
        # After 1 to 4 deltas, varied by client and turn.
        drop_after = 1 + (turn.client + len(self.turns)) % 4 if self.options.drop_sockets else None
        resume_due = False
        while not reading.done:
            if drop_after is not None and reading.deltas >= drop_after and turn.drops == 0:
                turn.drops += 1
                await self._abandon(abrupt=True)
                resume_due = True
            try:
                ws = await self._socket()
                if resume_due:
                    turn.resumes += 1
                    resume = {"type": "chat.resume", "request_id": reading.request_id}
                    await send(ws, resume | {"after_seq": reading.last_seq})
                    resume_due = False
                frame = await receive(ws, self.options.silence_seconds)
            except TimeoutError:
                resume_due = await self._stalled(turn, reading)
                if resume_due:
                    await self._abandon()
                continue
            except _BROKEN:
                await self._abandon()
                resume_due = True
                continue
            if not _belongs(frame, reading.request_id):
                continue
            if frame["type"] == "chat.error" and frame["code"] in RESUME_ERRORS:
                if frame["code"] == "not_found":
                    turn.problems.append(f"chat.resume answered {frame}")
                    return
                await asyncio.sleep(1.0)  # unavailable: resume again
                resume_due = True
                continue
            reading.apply(frame)

    async def _stalled(self, turn: Turn, reading: Reading) -> bool:
        """After a silence: whether the stream holds chunks this socket never delivered."""
        stored = await newest_chunk(self.js, reading.request_id)
        if stored is None or not stored.ahead_of(reading.last_seq, reading.attempt):
            return False  # nothing new was generated: the turn is waiting, not the socket
        turn.stalls.append(
            f"silent for {self.options.silence_seconds:.0f} s at seq {reading.last_seq} "
            f"(attempt {reading.attempt}) while CHAT_CHUNKS holds {stored.kind} seq "
            f"{stored.seq} (attempt {stored.attempt})"
        )
        return True

    async def _read_copy(self, turn: Turn, *, offset: int) -> None:
        """Send the turn's frame on a socket of its own and read what it gets."""
        try:
            async with connect(self._url(offset), additional_headers=self._headers()) as ws:
                await send(ws, turn.frame)
                while (answer := await receive(ws, self.options.answer_seconds)).get(
                    "id"
                ) != turn.send_id:
                    pass
                if answer["type"] != "chat.accepted":
                    turn.problems.append(f"a resent chat.send was answered {answer}")
                    return
                turn.copies_accepted.append(answer)
                reading = Reading(str(answer["request_id"]))
                turn.copies.append(reading)
                await self._read_plainly(ws, reading)
        except _BROKEN as error:
            turn.problems.append(f"the resent chat.send's socket failed: {error!r}")

    async def _read_plainly(self, ws: ClientConnection, reading: Reading) -> None:
        """Frames of `reading`'s turn until its end (TimeoutError after a long silence)."""
        while not reading.done:
            frame = await receive(ws, self.options.silence_seconds)
            if _belongs(frame, reading.request_id):
                reading.apply(frame)

    async def resend_all(self) -> None:
        """Send every accepted turn's `chat.send` once more and read the replay."""
        for turn in self.turns:
            if turn.accepted is not None:
                await self._read_copy(turn, offset=0)

    async def replay_all(self) -> None:
        """`chat.resume {after_seq: 0}` for every accepted turn: the whole answer again."""
        accepted = [turn for turn in self.turns if turn.request_id is not None]
        if not accepted:
            return
        async with connect(self._url(), additional_headers=self._headers()) as ws:
            for turn in accepted:
                assert turn.request_id is not None
                turn.replay = Reading(turn.request_id)
                resume = {"type": "chat.resume", "request_id": turn.request_id, "after_seq": 0}
                await send(ws, resume)
                with contextlib.suppress(TimeoutError):
                    await self._read_plainly(ws, turn.replay)


class Load:
    """`options.clients` clients running turns until `stop()`."""

    def __init__(
        self, system: System, js: JetStreamContext, scenario: str, options: LoadOptions
    ) -> None:
        self.options = options
        self.clients = [Client(system, js, i, scenario, options) for i in range(options.clients)]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Every client starts its first turn now."""
        self._tasks = [asyncio.create_task(client.run(self._stop)) for client in self.clients]

    async def stop(self) -> None:
        """No new turns; wait for the running ones to end (each has its own deadline)."""
        self._stop.set()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            for client in self.clients:
                await client.close()

    async def cancel(self) -> None:
        """The scenario failed: end every client now."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self.clients:
            await client.close()

    async def replay_all(self) -> None:
        """Every client replays each of its turns from the start (see `Client.replay_all`)."""
        await asyncio.gather(*(client.replay_all() for client in self.clients))

    @property
    def turns(self) -> list[Turn]:
        return [turn for client in self.clients for turn in client.turns]

    def accepted(self) -> int:
        """Turns accepted so far."""
        return sum(turn.accepted is not None for turn in self.turns)

    def ended(self) -> int:
        """Turns whose client has read their last frame."""
        return sum(turn.reading is not None and turn.reading.done for turn in self.turns)

    async def until_ended(self, count: int, within_seconds: float = 120.0) -> None:
        """Wait until at least `count` turns have ended (the load is flowing)."""
        async with asyncio.timeout(within_seconds):
            while self.ended() < count:  # noqa: ASYNC110 (clients keep no event)
                await asyncio.sleep(0.2)
