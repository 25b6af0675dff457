"""Dead letters: messages a durable consumer gave up on, kept in the DEAD_LETTERS stream.

A dead letter is the original message, byte for byte, published to
`deadletters.<stream>.<consumer>`; the header `Chatbus-Dead-Letter` holds a `DeadLetter`
(why, where from, the original's headers) as one line of ASCII JSON. Replaying one
publishes the body with the original headers to the original subject.

    reason            when
    handler_error     the handler raised on the consumer's last delivery (error_type, error)
    max_deliveries    the server gave up: the message was never acked in time (the process
                      died or hung on it) or was nak'ed outside chatbus' consumers
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import Field

from .common import Model, utc_now

DEAD_LETTERS_PREFIX = "deadletters"
DEAD_LETTERS_ALL = f"{DEAD_LETTERS_PREFIX}.>"

# The `DeadLetter` of a dead-letter message, as JSON.
DEAD_LETTER_HEADER = "Chatbus-Dead-Letter"
# Set on a replayed message: the DEAD_LETTERS sequence it was replayed from.
REPLAYED_FROM_HEADER = "Chatbus-Replayed-From"
MSG_ID_HEADER = "Nats-Msg-Id"

# Error texts are cut here, so a dead letter's headers stay small.
MAX_ERROR_CHARS = 2000

DeadLetterReason = Literal["handler_error", "max_deliveries"]


class DeadLetter(Model):
    """Why a message was set aside, and what a replay needs to put it back."""

    consumer: str
    stream: str
    subject: str = Field(description="The original subject; a replay publishes there.")
    stream_seq: int = Field(ge=1, description="The original's sequence in `stream`.")
    deliveries: int = Field(ge=0, description="How often the consumer got it.")
    reason: DeadLetterReason
    error_type: str | None = Field(default=None, description="The exception's class name.")
    error: str = Field(max_length=MAX_ERROR_CHARS)
    headers: dict[str, str] = Field(default_factory=dict, description="The original's headers.")
    published_at: datetime | None = Field(default=None, description="When the original was stored.")
    dead_lettered_at: datetime = Field(default_factory=utc_now)


def dead_letter_subject(stream: str, consumer: str) -> str:
    """Where dead letters of one consumer go: `deadletters.<stream>.<consumer>`."""
    return f"{DEAD_LETTERS_PREFIX}.{stream}.{consumer}"


def consumer_dead_letters(consumer: str) -> str:
    """The subject filter of one consumer's dead letters, whatever the stream."""
    return f"{DEAD_LETTERS_PREFIX}.*.{consumer}"


def dead_letter_msg_id(stream: str, consumer: str, stream_seq: int) -> str:
    """`Nats-Msg-Id` of a dead letter: one entry per original and consumer, however often filed."""
    return f"dead-letter:{stream}:{consumer}:{stream_seq}"


def max_deliveries_advisory(stream: str, consumer: str) -> str:
    """The subject JetStream announces a message on when `consumer` exhausted `max_deliver`."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"


def short_error(error: BaseException | str) -> str:
    """An error's text cut to `MAX_ERROR_CHARS`."""
    text = str(error) or type(error).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def dead_letter_headers(letter: DeadLetter) -> dict[str, str]:
    """Headers of a dead-letter publish: the letter as ASCII JSON (no line breaks) and its id."""
    return {
        DEAD_LETTER_HEADER: json.dumps(letter.model_dump(mode="json"), separators=(",", ":")),
        MSG_ID_HEADER: dead_letter_msg_id(letter.stream, letter.consumer, letter.stream_seq),
    }


def read_dead_letter(headers: dict[str, str] | None) -> DeadLetter | None:
    """The `DeadLetter` of a message in DEAD_LETTERS; None if it carries none."""
    value = (headers or {}).get(DEAD_LETTER_HEADER)
    return None if value is None else DeadLetter.model_validate_json(value)
