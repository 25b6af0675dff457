"""`chatbus dlq`: list, replay and purge the messages consumers gave up on (DEAD_LETTERS).

Operators run these against the bus directly (`--nats-url`). A dead letter is the
original message with a `DeadLetter` header (`chatbus_contracts.deadletters`); its
sequence in DEAD_LETTERS is the number the commands take.

Replay publishes the original payload and headers to the original subject and stream,
then deletes the dead letter; the consumer processes it again (consumers are
idempotent on `event_id`, so other consumers of the subject that already handled it
change nothing). The original `Nats-Msg-Id` is extended with `:replay:<seq>`: the
original id would be dropped as a duplicate inside the stream's dedupe window (2
minutes), while the extended one still makes a repeated replay of the same dead letter
inside the window publish once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats
from chatbus_contracts.deadletters import (
    DEAD_LETTERS_ALL,
    MSG_ID_HEADER,
    REPLAYED_FROM_HEADER,
    DeadLetter,
    consumer_dead_letters,
    read_dead_letter,
)
from chatbus_contracts.streams import DEAD_LETTERS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

PUBLISH_TIMEOUT_SECONDS = 5.0


class UnknownDeadLetterError(LookupError):
    """No dead letter has this sequence (or it is not of the chosen consumer)."""

    def __init__(self, seq: int) -> None:
        super().__init__(f"no dead letter {seq}")
        self.seq = seq


@dataclass(frozen=True)
class StoredDeadLetter:
    """A dead letter as kept in DEAD_LETTERS: its sequence and time there, why, and the payload."""

    seq: int
    time: datetime | None
    letter: DeadLetter
    payload: bytes

    def row(self) -> dict[str, Any]:
        """Everything about it as JSON-ready values (the payload as text)."""
        return {
            "seq": self.seq,
            "time": self.time.isoformat() if self.time else None,
            **self.letter.model_dump(mode="json"),
            "payload": self.payload.decode("utf-8", errors="backslashreplace"),
        }

    def summary(self) -> dict[str, Any]:
        """The columns of `dlq list`: seq, time, consumer, subject, reason."""
        letter = self.letter
        reason: str = letter.reason
        if letter.error_type:
            reason += f": {letter.error_type}"
        reason += f": {' '.join(letter.error.split())}"
        return {
            "seq": self.seq,
            "time": self.time.isoformat(timespec="seconds") if self.time else None,
            "consumer": letter.consumer,
            "subject": letter.subject,
            "reason": reason if len(reason) <= 100 else reason[:99] + "…",
        }


@dataclass(frozen=True)
class Replayed:
    """A dead letter published again: where it went."""

    seq: int
    stream: str
    subject: str
    stream_seq: int
    duplicate: bool


@asynccontextmanager
async def _jetstream(nats_url: str) -> AsyncIterator[JetStreamContext]:
    connection = await nats.connect(nats_url, allow_reconnect=False)
    try:
        yield connection.jetstream()
    finally:
        await connection.close()


def _filter(consumer: str | None) -> str:
    return DEAD_LETTERS_ALL if consumer is None else consumer_dead_letters(consumer)


async def _stored(js: JetStreamContext, consumer: str | None) -> list[StoredDeadLetter]:
    """Every dead letter (of `consumer`), oldest first."""
    stored: list[StoredDeadLetter] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(DEAD_LETTERS.name, seq=seq, subject=_filter(consumer), next=True)
        except NotFoundError:  # past the last one, or no DEAD_LETTERS stream yet
            return stored
        assert msg.seq is not None
        letter = read_dead_letter(msg.headers)
        if letter is not None:
            stored.append(StoredDeadLetter(msg.seq, msg.time, letter, msg.data or b""))
        seq = msg.seq + 1


async def _chosen(
    js: JetStreamContext, seqs: Sequence[int] | None, consumer: str | None
) -> list[StoredDeadLetter]:
    """The dead letters `seqs` names (all of `consumer` when None); unknown ones raise."""
    stored = await _stored(js, consumer)
    if seqs is None:
        return stored
    by_seq = {entry.seq: entry for entry in stored}
    for seq in seqs:
        if seq not in by_seq:
            raise UnknownDeadLetterError(seq)
    return [by_seq[seq] for seq in dict.fromkeys(seqs)]


async def list_dead_letters(nats_url: str, consumer: str | None = None) -> list[StoredDeadLetter]:
    """Every dead letter (of `consumer`), oldest first."""
    async with _jetstream(nats_url) as js:
        return await _stored(js, consumer)


def replay_headers(entry: StoredDeadLetter) -> dict[str, str]:
    """The original headers, with a `Nats-Msg-Id` of its own for this replay."""
    letter = entry.letter
    original_id = letter.headers.get(MSG_ID_HEADER) or f"{letter.stream}:{letter.stream_seq}"
    return {
        **letter.headers,
        MSG_ID_HEADER: f"{original_id}:replay:{entry.seq}",
        REPLAYED_FROM_HEADER: str(entry.seq),
    }


async def replay_dead_letters(
    nats_url: str, seqs: Sequence[int] | None, consumer: str | None = None
) -> list[Replayed]:
    """Publish the chosen dead letters to their original subject, then delete them.

    `seqs=None` replays every dead letter (of `consumer`). Nothing is replayed if any
    sequence is unknown.
    """
    replayed = []
    async with _jetstream(nats_url) as js:
        for entry in await _chosen(js, seqs, consumer):
            letter = entry.letter
            ack = await js.publish(
                letter.subject,
                entry.payload,
                timeout=PUBLISH_TIMEOUT_SECONDS,
                stream=letter.stream,
                headers=replay_headers(entry),
            )
            await js.delete_msg(DEAD_LETTERS.name, entry.seq)
            replayed.append(
                Replayed(entry.seq, ack.stream, letter.subject, ack.seq, bool(ack.duplicate))
            )
    return replayed


async def purge_dead_letters(
    nats_url: str, seqs: Sequence[int] | None, consumer: str | None = None
) -> list[int]:
    """Delete the chosen dead letters for good (all of `consumer` when `seqs` is None)."""
    async with _jetstream(nats_url) as js:
        chosen = await _chosen(js, seqs, consumer)
        for entry in chosen:
            await js.delete_msg(DEAD_LETTERS.name, entry.seq)
    return [entry.seq for entry in chosen]
