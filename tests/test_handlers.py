"""`CurrentMessage`: the message being handled, resolved on the event loop."""

from __future__ import annotations

import asyncio
import typing
from collections.abc import AsyncIterator

import pytest
from chatbus_cli.embedded import EmbeddedNats
from chatbus_runtime.handlers import CurrentMessage
from fast_depends.utils import is_coroutine_callable
from faststream.nats import NatsBroker

from .eventbus import broker_at

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_fast_depends_awaits_the_lookup_instead_of_sending_it_to_a_thread() -> None:
    (field,) = typing.get_args(CurrentMessage)[1:]
    assert is_coroutine_callable(field.use)


@pytest.fixture
async def broker(own_nats: EmbeddedNats) -> AsyncIterator[NatsBroker]:
    async with broker_at(own_nats.url) as broker:
        yield broker


async def test_a_handler_gets_the_message_with_its_body(broker: NatsBroker) -> None:
    seen: asyncio.Queue[tuple[str, bytes, str]] = asyncio.Queue()

    @broker.subscriber("test.handlers.>")
    async def handler(body: str, msg: CurrentMessage) -> None:
        await seen.put((body, msg.body, msg.raw_message.subject))

    await broker.start()
    await broker.publish("hello", "test.handlers.one")
    assert await asyncio.wait_for(seen.get(), 10) == ("hello", b"hello", "test.handlers.one")
