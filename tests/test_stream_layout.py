"""Settings that change the declared streams: CHATBUS_REQUESTS_DUPLICATE_WINDOW_SECONDS."""

from __future__ import annotations

import asyncio

import pytest
from chatbus_cli.embedded import EmbeddedNats
from chatbus_contracts import subjects
from chatbus_contracts.streams import ALL_STREAMS, CHAT_REQUESTS, EVENTS
from chatbus_runtime.bus import declare_streams

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
