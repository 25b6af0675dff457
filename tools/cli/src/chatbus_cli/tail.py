"""`chatbus tail SUBJECT`: print the events of the bus as JSON lines, as they are published.

Reads the EVENTS stream with an ephemeral ordered consumer (nothing is left behind on
the server), from now on or, with `--from-start`, from the oldest event kept.
"""

from __future__ import annotations

import json
from typing import TextIO

import nats
from chatbus_contracts.streams import EVENTS
from nats.js.api import DeliverPolicy


def event_subject_matches(pattern: str) -> bool:
    """Whether a subject pattern (`message.created`, `conversation.*`, `>`) names events."""
    tokens = pattern.split(".")

    def matches(subject: str) -> bool:
        parts = subject.split(".")
        for index, token in enumerate(tokens):
            if token == ">":
                return len(parts) > index
            if index >= len(parts) or token not in ("*", parts[index]):
                return False
        return len(parts) == len(tokens)

    return any(matches(subject) for subject in EVENTS.subjects)


async def tail_events(
    nats_url: str,
    subject: str,
    out: TextIO,
    *,
    from_start: bool = False,
    limit: int | None = None,
) -> int:
    """Write each event on `subject` to `out` as one JSON line; return how many were written."""
    connection = await nats.connect(nats_url)
    written = 0
    try:
        subscription = await connection.jetstream().subscribe(
            subject,
            stream=EVENTS.name,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL if from_start else DeliverPolicy.NEW,
        )
        async for msg in subscription.messages:
            event = json.loads(msg.data)
            out.write(json.dumps({"subject": msg.subject, **event}, separators=(",", ":")) + "\n")
            out.flush()
            written += 1
            if limit is not None and written >= limit:
                break
    finally:
        await connection.close()
    return written
