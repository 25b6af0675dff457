"""After a scenario: did every accepted turn end exactly once, everywhere?

For each accepted turn (a `chat.accepted` the client got):

    exactly one of: one assistant message in Postgres, or one `message.failed` event
    one user message; one `chat` ledger row with an answer, at most one without
    the client's last frame says the same (`chat.end` / `chat.error`)
    the client's text = the stored message = the emulator's reply to the question

A turn breaking the first two lines is *lost* (nothing, or no ledger row) or
*duplicated* (two of anything); one breaking the last two is *mismatched*. So are
protocol violations the client saw (a gap or a repeat in `seq`) and copies (resent
`chat.send`s) whose answer differs from the original's.

Two more properties are kept apart, so a scenario can name a known bug for them:
*stalled* (a live socket stopped relaying chunks the stream holds: only a resume got
the rest) and *unreplayable* (`chat.resume {after_seq: 0}` afterwards does not give
the stored answer and the turn's end).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from chatbus_contracts import subjects
from chatbus_contracts.streams import EVENTS
from nats.js import JetStreamContext

from .bus import backlog, read_stream
from .load import Turn
from .processes import System
from .reading import Reading

SETTLE_SECONDS = 180.0


@dataclass
class Stored:
    """What Postgres and the EVENTS stream hold for the scenario's users, by request id."""

    answers: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    questions: Counter[str] = field(default_factory=Counter)
    ledger: Counter[str] = field(default_factory=Counter)
    failures: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    miscounted: list[str] = field(default_factory=list)  # conversations counting wrong


@dataclass
class Verdict:
    """The scenario's outcome; `problems` names every turn that is not right."""

    accepted: int = 0
    completed: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    mismatched: int = 0
    restarts: int = 0
    resumes: int = 0
    problems: list[str] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)
    unreplayable: list[str] = field(default_factory=list)


async def _fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def read_stored(
    system: System, js: JetStreamContext, users: list[str], events_after: int
) -> Stored:
    """Messages, ledger rows and `message.failed` events of `users`."""
    stored = Stored()
    messages = await _fetch(
        system.dsn,
        "SELECT request_id, role, content FROM conversation.messages WHERE user_id = ANY($1)",
        users,
    )
    for row in messages:
        request_id = str(row["request_id"])
        if row["role"] == "assistant":
            stored.answers[request_id].append(str(row["content"]))
        else:
            stored.questions[request_id] += 1
    ledger = await _fetch(
        system.dsn,
        "SELECT request_id FROM usage.ledger WHERE user_id = ANY($1) AND kind = 'chat'",
        users,
    )
    stored.ledger.update(str(row["request_id"]) for row in ledger)
    counts = await _fetch(
        system.dsn,
        "SELECT c.id, c.message_count, count(m.id) AS stored FROM conversation.conversations c "
        "LEFT JOIN conversation.messages m ON m.conversation_id = c.id "
        "WHERE c.user_id = ANY($1) GROUP BY c.id, c.message_count",
        users,
    )
    stored.miscounted = [
        f"conversation {row['id']} counts {row['message_count']} messages, holds {row['stored']}"
        for row in counts
        if row["message_count"] != row["stored"]
    ]
    wanted = set(users)
    for msg in await read_stream(js, EVENTS.name, subjects.MESSAGE_FAILED, events_after):
        event = json.loads(msg.data or b"{}")
        if event["user_id"] in wanted:
            stored.failures[str(event["request_id"])].add(str(event["event_id"]))
    return stored


def _ended(stored: Stored, request_id: str) -> bool:
    answered = bool(stored.answers.get(request_id)) and stored.ledger[request_id] > 0
    return answered or bool(stored.failures.get(request_id))


async def settle(
    system: System, js: JetStreamContext, turns: list[Turn], events_after: int
) -> Stored:
    """Wait until the consumers are idle and every accepted turn has ended in the stores.

    Gives up after SETTLE_SECONDS and returns what is there (the verdict says what is lost).
    """
    users = sorted({turn.user for turn in turns})
    requests = [turn.request_id for turn in turns if turn.request_id is not None]
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        idle = not any((await backlog(js)).values())
        stored = await read_stored(system, js, users, events_after)
        if idle and all(_ended(stored, request_id) for request_id in requests):
            return stored
        if time.monotonic() > deadline:
            return stored
        await asyncio.sleep(1.0)


def _same_answer(reading: Reading, answer: str, expected: str) -> str | None:
    """Why the client's reading does not show the stored answer, or None."""
    if reading.terminal is None:
        return "the client never got the turn's end"
    if reading.terminal["type"] not in ("chat.end", "chat.message"):
        return f"the client got {reading.terminal} but the answer is stored"
    if reading.text != answer:
        return f"the client shows {_difference(reading.text, answer)}"
    if answer != expected:
        return f"the stored answer is {_difference(answer, expected)} (the emulator's reply)"
    return None


def _difference(shown: str, truth: str) -> str:
    """`shown` against `truth` around the first character where they differ."""
    at = next((i for i, (a, b) in enumerate(zip(shown, truth, strict=False)) if a != b), None)
    at = min(len(shown), len(truth)) if at is None else at
    start = max(at - 20, 0)
    return (
        f"{shown[start : at + 40]!r} where there is {truth[start : at + 40]!r} "
        f"(from character {start}; {len(shown)} vs {len(truth)} characters)"
    )


def _judge_turn(turn: Turn, stored: Stored, verdict: Verdict) -> None:
    request_id = turn.request_id
    assert request_id is not None and turn.reading is not None and turn.accepted is not None
    reading = turn.reading
    answers = stored.answers.get(request_id, [])
    failures = stored.failures.get(request_id, set())
    ledger = stored.ledger[request_id]
    label = f"turn {turn.send_id} ({request_id})"
    twice = [
        what
        for what, count in (
            ("assistant messages", len(answers)),
            ("user messages", stored.questions[request_id]),
            ("ledger rows", ledger),
            ("message.failed events", len(failures)),
        )
        if count > 1
    ]
    if answers and failures:
        twice.append("both an answer and a message.failed")
    if twice:
        verdict.duplicated += 1
        verdict.problems.append(f"{label}: duplicated: {', '.join(twice)}")
        return
    if not answers and not failures:
        verdict.lost += 1
        verdict.problems.append(f"{label}: lost: no answer stored, no message.failed")
        return
    if stored.questions[request_id] == 0 or (answers and ledger == 0):
        verdict.lost += 1
        what = "user message" if stored.questions[request_id] == 0 else "ledger row"
        verdict.problems.append(f"{label}: lost: no {what}")
        return
    why = None
    if answers:
        why = _same_answer(reading, answers[0], turn.expected_answer)
        end = reading.terminal or {}
        wrong_id = end.get("message_id") != turn.accepted["assistant_message_id"]
        if why is None and end.get("type") == "chat.end" and wrong_id:
            why = f"chat.end names message {end['message_id']}"
        for copy in turn.copies:
            why = why or _copy_differs(turn, copy, answers[0])
        for accepted in turn.copies_accepted:
            if why is None and accepted != turn.accepted:
                why = f"a resend was accepted as {accepted}, the original as {turn.accepted}"
        if turn.replay is not None and (replayed := _replay_differs(turn, answers[0])):
            verdict.unreplayable.append(f"{label}: {replayed}")
    elif reading.terminal is None or reading.terminal["type"] != "chat.error":
        why = f"message.failed is stored but the client got {reading.terminal}"
    why = why or (f"protocol: {reading.violations}" if reading.violations else None)
    if why is not None:
        verdict.mismatched += 1
        verdict.problems.append(f"{label}: mismatched: {why}")
    elif answers:
        verdict.completed += 1
    else:
        verdict.failed += 1


def _replay_differs(turn: Turn, answer: str) -> str | None:
    """Why `chat.resume {after_seq: 0}` did not give the whole stored answer, or None."""
    replay, original = turn.replay, turn.reading
    assert replay is not None and original is not None
    if replay.terminal is None:
        return f"the replay from seq 0 stopped at seq {replay.last_seq}, without an end"
    if replay.text != answer:
        return f"the replay from seq 0 shows {_difference(replay.text, answer)}"
    if replay.terminal != original.terminal:
        return f"the replay ended with {replay.terminal}, the turn with {original.terminal}"
    return None


def _copy_differs(turn: Turn, copy: Reading, answer: str) -> str | None:
    """Why a resent `chat.send`'s answer is not the original's, or None."""
    original = turn.reading
    assert original is not None
    if copy.request_id != original.request_id:
        return f"a resend was accepted as another request, {copy.request_id}"
    why = _same_answer(copy, answer, turn.expected_answer)
    if why is not None:
        return f"resend: {why}"
    if copy.terminal != original.terminal:
        return f"resend ended with {copy.terminal}, the original with {original.terminal}"
    if copy.violations:
        return f"resend: protocol: {copy.violations}"
    return None


def judge(turns: list[Turn], stored: Stored) -> Verdict:
    """The verdict over every turn of a scenario."""
    verdict = Verdict()
    for turn in turns:
        verdict.problems.extend(f"turn {turn.send_id}: {problem}" for problem in turn.problems)
        if turn.accepted is None:
            continue
        verdict.accepted += 1
        verdict.resumes += turn.resumes
        verdict.stalled.extend(f"turn {turn.send_id}: {stall}" for stall in turn.stalls)
        if turn.reading is not None:
            verdict.restarts += turn.reading.restarts
        _judge_turn(turn, stored, verdict)
    accepted = {turn.request_id for turn in turns}
    for request_id in {*stored.answers, *stored.failures} - accepted:
        verdict.problems.append(f"request {request_id} is stored but was never accepted")
    verdict.problems.extend(stored.miscounted)
    return verdict
