"""Poison messages end in DEAD_LETTERS with their reason; `chatbus dlq` lists and replays them.

The services under test run with a short redelivery policy (`CHATBUS_MAX_DELIVER`,
`CHATBUS_REDELIVERY_*`), in place of the stack's replica for the length of a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from chatbus_cli.dlq import StoredDeadLetter, list_dead_letters
from chatbus_cli.main import app
from chatbus_contracts.deadletters import REPLAYED_FROM_HEADER
from chatbus_contracts.streams import CHAT_REQUESTS, EVENTS, ConsumerSpec
from chatbus_inference.app import InferenceService
from chatbus_runtime.bus import create_broker, declare_streams, start_broker
from chatbus_runtime.deadletters import dead_letter_office
from chatbus_runtime.settings import ServiceSettings
from chatbus_usage.app import UsageService
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from typer.testing import CliRunner
from websockets.asyncio.client import connect

from .eventbus import jetstream, scratch_stream, usage_event
from .infra import Infra
from .stack import Stack
from .wsclient import receive, send

pytestmark = pytest.mark.integration

# Three deliveries, 50 ms apart at first: a poison message is set aside within a second.
FAST_RETRIES: dict[str, Any] = {
    "max_deliver": 3,
    "redelivery_first_delay_seconds": 0.05,
    "redelivery_max_delay_seconds": 0.2,
}


async def _cli(*args: str) -> tuple[int, str]:
    result = await asyncio.get_running_loop().run_in_executor(
        None, lambda: CliRunner().invoke(app, list(args), catch_exceptions=False)
    )
    return result.exit_code, result.stdout


@contextlib.asynccontextmanager
async def _usage_service(stack: Stack, **overrides: Any) -> AsyncIterator[UsageService]:
    """The stack's usage service replaced by one with `overrides`; a default one after."""
    index = next(i for i, s in enumerate(stack.services) if isinstance(s, UsageService))
    settings = stack.services[index].settings
    await stack.services[index].stop()
    replica = UsageService(settings.model_copy(update=overrides), stack.tracer_provider)
    await replica.start()
    try:
        yield replica
    finally:
        await replica.stop()
        stack.services[index] = UsageService(settings, stack.tracer_provider)
        await stack.services[index].start()


def _counted(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    """`chatbus.dead_letters` by (consumer, reason)."""
    data = reader.get_metrics_data()
    counts: dict[tuple[str, str], int] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != "chatbus.dead_letters":
                    continue
                for point in metric.data.data_points:
                    attributes = point.attributes or {}
                    key = (str(attributes["consumer"]), str(attributes["reason"]))
                    counts[key] = int(point.value)  # type: ignore[union-attr]
    return counts


async def _dead_letters_of(
    infra: Infra, consumer: str, stream_seqs: set[int], *, within_seconds: float = 20.0
) -> dict[int, StoredDeadLetter]:
    """The dead letters of these originals (by stream sequence), once all are filed."""
    async with asyncio.timeout(within_seconds):
        while True:
            entries = await list_dead_letters(infra.nats_url, consumer)
            found = {e.letter.stream_seq: e for e in entries if e.letter.stream_seq in stream_seqs}
            if set(found) == stream_seqs:
                return found
            await asyncio.sleep(0.1)


async def test_poison_usage_events_are_dead_lettered_listed_and_replayed(stack: Stack) -> None:
    user, refused_user = f"dlq-{uuid.uuid4().hex[:6]}", f"refused-{uuid.uuid4().hex[:6]}"
    before, refused, after = usage_event(user), usage_event(refused_user), usage_event(user)
    reader = InMemoryMetricReader()
    constraint = f"dlq_test_{uuid.uuid4().hex[:6]}"

    async def ledger_users() -> list[str]:
        rows = await stack.fetch(
            "SELECT user_id FROM usage.ledger WHERE user_id = ANY($1::text[]) ORDER BY id",
            [user, refused_user],
        )
        return [row["user_id"] for row in rows]

    async with _usage_service(stack, **FAST_RETRIES) as usage, jetstream(stack.infra) as js:
        dead_letter_office(usage.broker).count_into(MeterProvider(metric_readers=[reader]))
        # A row the store refuses (until the operator fixes it), between two good events.
        await stack.fetch(
            f"ALTER TABLE usage.ledger ADD CONSTRAINT {constraint} "
            f"CHECK (user_id <> '{refused_user}') NOT VALID"
        )
        try:
            seqs = {}
            for name, body, msg_id in [
                ("before", before.model_dump_json().encode(), str(before.event_id)),
                ("bad bytes", b'{"event_id": "not a uuid", \xff', f"poison-{uuid.uuid4()}"),
                ("refused", refused.model_dump_json().encode(), str(refused.event_id)),
                ("after", after.model_dump_json().encode(), str(after.event_id)),
            ]:
                ack = await js.publish(
                    "usage.recorded", body, headers={"Nats-Msg-Id": msg_id}, stream=EVENTS.name
                )
                seqs[name] = ack.seq
            filed = await _dead_letters_of(
                stack.infra, "usage", {seqs["bad bytes"], seqs["refused"]}
            )
        finally:
            await stack.fetch(f"ALTER TABLE usage.ledger DROP CONSTRAINT {constraint}")

        # The events around the poison were processed; each poison got exactly 3 deliveries.
        assert await ledger_users() == [user, user]
        bad, refusal = filed[seqs["bad bytes"]], filed[seqs["refused"]]
        for entry in (bad, refusal):
            letter = entry.letter
            assert (letter.stream, letter.subject, letter.consumer) == (
                "EVENTS",
                "usage.recorded",
                "usage",
            )
            assert (letter.reason, letter.deliveries) == ("handler_error", 3)
        assert bad.letter.error_type == "ValidationError"
        assert bad.payload == b'{"event_id": "not a uuid", \xff'
        assert bad.letter.headers["Nats-Msg-Id"].startswith("poison-")
        assert refusal.letter.error_type == "IntegrityError" and constraint in refusal.letter.error
        assert _counted(reader) == {("usage", "handler_error"): 2}

        # `chatbus dlq list`, as JSON and as a table.
        code, out = await _cli(
            "dlq", "list", "--consumer", "usage", "--nats-url", stack.infra.nats_url, "--json"
        )
        assert code == 0, out
        rows = {row["seq"]: row for row in json.loads(out)}
        assert rows[refusal.seq]["stream_seq"] == seqs["refused"]
        assert rows[refusal.seq]["payload"] == refused.model_dump_json()
        assert rows[bad.seq]["error_type"] == "ValidationError"
        code, out = await _cli("dlq", "list", "--nats-url", stack.infra.nats_url)
        assert code == 0
        header, *lines = out.splitlines()
        assert header.split("\t") == ["seq", "time", "consumer", "subject", "reason"]
        cells = {line.split("\t")[0]: line.split("\t") for line in lines}
        assert cells[str(bad.seq)][2:4] == ["usage", "usage.recorded"]
        assert cells[str(bad.seq)][4].startswith("handler_error: ValidationError: ")

        # Fixed, the refused event is replayed and stored; the entry is gone.
        code, out = await _cli(
            "dlq", "replay", str(refusal.seq), "--nats-url", stack.infra.nats_url
        )
        assert code == 0 and out.startswith(f"replayed {refusal.seq} to usage.recorded"), out

        async def stored() -> bool:
            return refused_user in await ledger_users()

        await stack.wait_for(stored, within_seconds=10)
        remaining = {e.seq for e in await list_dead_letters(stack.infra.nats_url, "usage")}
        assert refusal.seq not in remaining and bad.seq in remaining

        # The bad bytes are still bad: replayed, they run again and come back as a new entry.
        code, out = await _cli("dlq", "replay", str(bad.seq), "--nats-url", stack.infra.nats_url)
        assert code == 0, out
        again = await _redelivered_entry(stack.infra, bad.seq)
        assert again.payload == bad.payload and again.letter.deliveries == 3
        assert _counted(reader) == {("usage", "handler_error"): 3}

        code, out = await _cli("dlq", "purge", str(again.seq), "--nats-url", stack.infra.nats_url)
        assert (code, out.strip()) == (0, "purged 1 dead letter(s)")
        remaining = {e.seq for e in await list_dead_letters(stack.infra.nats_url)}
        assert not remaining & {bad.seq, again.seq, refusal.seq}


async def _redelivered_entry(infra: Infra, replayed_from: int) -> StoredDeadLetter:
    """The dead letter filed for the replay of dead letter `replayed_from`."""
    async with asyncio.timeout(20):
        while True:
            for entry in await list_dead_letters(infra.nats_url):
                if entry.letter.headers.get(REPLAYED_FROM_HEADER) == str(replayed_from):
                    return entry
            await asyncio.sleep(0.1)


async def test_a_request_inference_keeps_failing_on_ends_with_a_dead_lettered_error(
    stack: Stack,
) -> None:
    user = f"dlq-turn-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    # A history query can never answer in 0.1 ms: every delivery fails on infrastructure.
    settings = stack.inference_settings.model_copy(
        update={**FAST_RETRIES, "max_deliver": 2, "history_timeout_seconds": 0.0001}
    )
    async with stack.without_inference():
        replica = InferenceService(settings, stack.tracer_provider)
        await replica.start()
        try:
            async with connect(stack.ws_url, additional_headers=headers) as ws:
                await send(ws, {"type": "chat.send", "id": "doomed", "content": "hello?"})
                async with asyncio.timeout(20):
                    frames = [await receive(ws)]
                    while frames[-1]["type"] not in ("chat.end", "chat.error"):
                        frames.append(await receive(ws))
        finally:
            await replica.stop()
    # No answer, and no hanging: the turn ends with the error (after a `chat.restart` of
    # the second attempt).
    types = [f["type"] for f in frames]
    assert types[0] == "chat.accepted" and "chat.delta" not in types
    error = frames[-1]
    assert error["code"] == "dead_lettered" and error["retryable"] is False
    request_id = frames[0]["request_id"]

    entries = [
        e
        for e in await list_dead_letters(stack.infra.nats_url, "inference")
        if json.loads(e.payload)["request_id"] == request_id
    ]
    assert len(entries) == 1
    letter = entries[0].letter
    assert (letter.stream, letter.reason, letter.deliveries) == (
        CHAT_REQUESTS.name,
        "handler_error",
        2,
    )
    async with jetstream(stack.infra) as js:
        # Terminated, so the work queue let go of it; and the turn failed for everyone else too.
        async def let_go() -> bool:
            return (await js.stream_info(CHAT_REQUESTS.name)).state.messages == 0

        await stack.wait_for(let_go, within_seconds=5)
        failed = await js.get_last_msg(EVENTS.name, "message.failed")
        event = json.loads(failed.data or b"")
        assert (event["request_id"], event["code"]) == (request_id, "dead_lettered")
    code, _ = await _cli("dlq", "purge", str(entries[0].seq), "--nats-url", stack.infra.nats_url)
    assert code == 0


async def test_a_message_never_acked_is_dead_lettered_from_the_advisory(infra: Infra) -> None:
    """A consumer that never acks (as a process that dies on the message) until JetStream
    gives up: the max-deliveries advisory files it, and a work queue lets go of it."""
    stream = scratch_stream("dlq_test", retention="workqueue")
    spec = ConsumerSpec(
        durable="dying",
        stream=stream,
        filter_subjects=stream.subjects,
        ack_wait_seconds=1.0,
        max_deliver=2,
    )
    # max_deliver=None: the spec's own limit, whatever the environment says.
    broker = create_broker(
        ServiceSettings(nats_url=infra.nats_url, max_deliver=None),
        service_name="dlq-test",
        tracer_provider=TracerProvider(),
    )
    office = dead_letter_office(broker)
    reader = InMemoryMetricReader()
    office.count_into(MeterProvider(metric_readers=[reader]))
    hooked: list[tuple[int, bytes]] = []

    async def hook(letter: Any, payload: bytes) -> None:
        hooked.append((letter.stream_seq, payload))

    office.on_dead_letter(spec, hook)
    await broker.connect()
    await declare_streams(broker, (stream,))
    await start_broker(broker, spec)  # declares the consumer and listens for its advisory
    try:
        async with jetstream(infra) as js:
            ack = await js.publish(stream.subjects[0], b"crash me", headers={"X-Trace": "t-1"})
            puller = await js.pull_subscribe_bind(durable="dying", stream=stream.name)
            for delivery in (1, 2):
                (msg,) = await puller.fetch(1, timeout=5)
                assert msg.metadata.num_delivered == delivery  # and dies without an ack
            # A waiting pull (the restarted process) makes the server notice it gave up.
            with contextlib.suppress(TimeoutError):
                await puller.fetch(1, timeout=3)
            filed = await _dead_letters_of(infra, "dying", {ack.seq})
            letter = filed[ack.seq].letter
            assert (letter.reason, letter.deliveries, letter.error_type) == (
                "max_deliveries",
                2,
                None,
            )
            assert (letter.stream, letter.subject) == (stream.name, stream.subjects[0])
            assert letter.headers["X-Trace"] == "t-1" and filed[ack.seq].payload == b"crash me"
            assert hooked == [(ack.seq, b"crash me")]
            assert _counted(reader) == {("dying", "max_deliveries"): 1}
            assert (await js.stream_info(stream.name)).state.messages == 0
            await js.delete_msg("DEAD_LETTERS", filed[ack.seq].seq)
            await js.delete_stream(stream.name)
    finally:
        await broker.stop()
