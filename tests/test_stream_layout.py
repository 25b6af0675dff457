"""How streams and buckets are declared: CHATBUS_REQUESTS_DUPLICATE_WINDOW_SECONDS, direct gets."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest
from chatbus_cli.embedded import EmbeddedNats
from chatbus_contracts import subjects
from chatbus_contracts.chunks import DeltaChunk
from chatbus_contracts.streams import (
    ALL_BUCKETS,
    ALL_STREAMS,
    CHAT_CHUNKS,
    CHAT_REQUESTS,
    CHAT_TURNS,
    EVENTS,
)
from chatbus_runtime.bus import Bucket, StreamLayout, declare_buckets, declare_streams
from chatbus_runtime.chunks import last_chunk
from nats.js import api

from .eventbus import broker_at

pytestmark = pytest.mark.integration

WINDOW_SECONDS = 1.0


async def test_the_requests_dedupe_window_is_a_setting(
    own_nats: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATBUS_REQUESTS_DUPLICATE_WINDOW_SECONDS", str(WINDOW_SECONDS))
    async with broker_at(own_nats.url) as broker:
        await declare_streams(broker, ALL_STREAMS)
        js = broker.connection.jetstream()
        requests = await js.stream_info(CHAT_REQUESTS.name)
        events = await js.stream_info(EVENTS.name)
        assert requests.config.duplicate_window == WINDOW_SECONDS
        assert events.config.duplicate_window == EVENTS.duplicate_window_seconds  # untouched

        async def publish() -> bool:
            headers = {"Nats-Msg-Id": "send-1"}
            ack = await js.publish(subjects.CHAT_REQUESTS, b"{}", headers=headers)
            return bool(ack.duplicate)

        assert [await publish(), await publish()] == [False, True]
        await asyncio.sleep(WINDOW_SECONDS + 0.5)
        assert await publish() is False  # the window passed: stored again


async def test_buckets_answer_direct_gets_even_when_made_without(own_nats: EmbeddedNats) -> None:
    async with broker_at(own_nats.url) as broker:
        js = broker.connection.jetstream()
        # As an older chatbus made it: nats-py's default, no direct gets.
        old = await js.create_key_value(api.KeyValueConfig(bucket=CHAT_TURNS.name, history=1))
        await old.put("turn", b"kept")
        assert not (await js.stream_info(f"KV_{CHAT_TURNS.name}")).config.allow_direct
        await declare_buckets(broker)
        for spec in ALL_BUCKETS:
            assert (await js.stream_info(f"KV_{spec.name}")).config.allow_direct, spec.name
        turns = Bucket(broker, CHAT_TURNS)
        assert await turns.value("turn") == b"kept"
        assert await turns.value("missing") is None


async def test_chunks_answer_direct_gets_even_when_declared_without(
    own_nats: EmbeddedNats,
) -> None:
    async with broker_at(own_nats.url) as broker:
        js = broker.connection.jetstream()
        # As an older chatbus declared it: no direct gets.
        await js.add_stream(name=CHAT_CHUNKS.name, subjects=list(CHAT_CHUNKS.subjects))
        await declare_streams(broker, (CHAT_CHUNKS,))
        assert (await js.stream_info(CHAT_CHUNKS.name)).config.allow_direct
        request_id = uuid.uuid4()
        subject = subjects.chat_chunks_subject("gw1", request_id)
        chunk = DeltaChunk(request_id=request_id, seq=1, text="hi")
        await js.publish(subject, chunk.model_dump_json().encode())
        assert await last_chunk(broker, subject) == chunk  # a direct get
        # An older chatbus starting now declares it without again: still read, by the API.
        await js.update_stream(
            replace((await js.stream_info(CHAT_CHUNKS.name)).config, allow_direct=False)
        )
        assert await last_chunk(broker, subject) == chunk
        wildcard = subjects.chat_chunks_request_wildcard(request_id)
        assert await last_chunk(broker, wildcard) == chunk  # through the JetStream API
        assert await last_chunk(broker, subjects.chat_chunks_subject("gw1", uuid.uuid4())) is None


def test_a_replicated_stream_answers_no_direct_gets() -> None:
    """Every replica would answer them, a follower possibly behind the terminal chunk."""
    assert StreamLayout(replicas=1).direct_gets(CHAT_CHUNKS)
    assert not StreamLayout(replicas=3).direct_gets(CHAT_CHUNKS)
    assert not StreamLayout(replicas=3).stream_config(CHAT_CHUNKS).allow_direct
    assert not StreamLayout(replicas=1).direct_gets(EVENTS)  # its contract asks for none
