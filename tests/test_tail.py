"""`chatbus tail`: the events of a turn, printed as JSON lines by the CLI."""

from __future__ import annotations

import asyncio
import json
import uuid

import nats
import pytest
from chatbus_cli.main import app
from chatbus_cli.tail import event_subject_matches
from chatbus_contracts.streams import EVENTS
from typer.testing import CliRunner
from websockets.asyncio.client import connect

from .stack import Stack
from .wsclient import read_turn, send

pytestmark = pytest.mark.integration


def test_patterns_must_name_event_subjects() -> None:
    assert event_subject_matches("message.created")
    assert event_subject_matches("conversation.*") and event_subject_matches(">")
    assert not event_subject_matches("chat.requests")
    assert not event_subject_matches("message.created.extra")
    result = CliRunner().invoke(app, ["tail", "chat.>", "--nats-url", "nats://127.0.0.1:1"])
    assert result.exit_code == 2 and "names no event subject" in result.output


async def _stored_count(stack: Stack, subject: str) -> int:
    connection = await nats.connect(stack.infra.nats_url)
    try:
        info = await connection.jetstream().stream_info(EVENTS.name, subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))
    finally:
        await connection.close()


async def test_tail_prints_the_message_created_events_of_a_turn(stack: Stack) -> None:
    user = f"tailed-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    async with connect(stack.ws_url, additional_headers=headers) as ws:
        await send(ws, {"type": "chat.send", "id": "tail-1", "content": "watch me"})
        turn = await read_turn(ws)
    # Read every message.created kept so far (the limit ends the tail), through the CLI.
    limit = await _stored_count(stack, "message.created")
    args = ["tail", "message.created", "--from-start", "--limit", str(limit)]
    args += ["--nats-url", stack.infra.nats_url]
    result = await asyncio.get_running_loop().run_in_executor(
        None, lambda: CliRunner().invoke(app, args, catch_exceptions=False)
    )
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines()]
    assert len(events) == limit
    mine = [e for e in events if e["user_id"] == user]
    assert [(e["subject"], e["role"]) for e in mine] == [
        ("message.created", "user"),
        ("message.created", "assistant"),
    ]
    assert mine[1]["message_id"] == turn.accepted["assistant_message_id"]
    assert mine[1]["content"] == turn.text
