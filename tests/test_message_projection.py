"""Events applied straight to the projection: `message.created` out of order,
redelivered, or naming another user's conversation; `conversation.updated` out of order
and from another user; `conversation.deleted`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from chatbus_contracts.common import ChatSettings, TokenUsage, first_words, utc_now
from chatbus_contracts.events import ConversationDeleted, ConversationUpdated
from chatbus_conversation.projection import Projection
from chatbus_runtime.database import create_engine

from .eventbus import conversation_created, message_created
from .stack import Stack, unique_user

pytestmark = pytest.mark.integration


@pytest.fixture
async def projection(stack: Stack) -> AsyncIterator[Projection]:
    engine = create_engine(stack.infra.database_url, pool_size=2)
    try:
        yield Projection(engine, title_max_chars=20)
    finally:
        await engine.dispose()


async def _conversation(stack: Stack, conversation_id: uuid.UUID) -> dict[str, object]:
    rows = await stack.fetch(
        "SELECT user_id, title, title_source, model, memory, message_count, total_tokens,"
        " cost_usd, active_message_id, updated_at"
        " FROM conversation.conversations WHERE id = $1",
        conversation_id,
    )
    assert len(rows) == 1
    return dict(rows[0])


async def test_a_message_before_its_conversation_creates_it_with_the_users_preferences(
    stack: Stack, projection: Projection
) -> None:
    user = unique_user("early")
    await stack.fetch(
        "INSERT INTO conversation.preferences (user_id, default_model, default_memory, updated_at)"
        " VALUES ($1, 'gpt-4o-mini', true, now())",
        user,
    )
    created = conversation_created(user, "the real title")
    first = message_created(user, created.conversation_id, "hello there\x00 my good friend")

    assert await projection.message_created(first) is True
    stored = await _conversation(stack, created.conversation_id)
    assert stored["title"] == first_words("hello there\ufffd my good friend", 20)
    assert stored["title_source"] == "message"
    assert (stored["model"], stored["memory"]) == ("gpt-4o-mini", True)
    assert (stored["message_count"], stored["active_message_id"]) == (1, first.message_id)
    assert stored["updated_at"] == first.created_at
    content = await stack.fetch(
        "SELECT content FROM conversation.messages WHERE id = $1", first.message_id
    )
    assert content[0]["content"] == "hello there\ufffd my good friend"

    # The conversation.created that comes later, and the message redelivered, change nothing.
    await projection.conversation_created(created)
    assert await projection.message_created(first) is False
    assert await _conversation(stack, created.conversation_id) == stored


async def test_messages_are_counted_once_and_the_newest_is_active_whatever_the_order(
    stack: Stack, projection: Projection
) -> None:
    user = unique_user("counter")
    created = conversation_created(user, "counted")
    await projection.conversation_created(created)
    question = message_created(user, created.conversation_id, "q")
    answer = message_created(user, created.conversation_id, "a", role="assistant").model_copy(
        update={
            "created_at": question.created_at + timedelta(seconds=1),
            "usage": TokenUsage(prompt_tokens=3, completion_tokens=2),
            "cost_usd": Decimal("0.0000125"),
        }
    )

    for event, inserted in ((answer, True), (question, True), (answer, False), (question, False)):
        assert await projection.message_created(event) is inserted
    stored = await _conversation(stack, created.conversation_id)
    assert (stored["message_count"], stored["total_tokens"]) == (2, 5)
    assert stored["cost_usd"] == Decimal("0.0000125")
    # The older message, arriving last, does not take the active place of the newer one.
    assert stored["active_message_id"] == answer.message_id


async def test_a_message_naming_another_users_conversation_is_refused(
    stack: Stack, projection: Projection, caplog: pytest.LogCaptureFixture
) -> None:
    alice, mallory = unique_user("owner"), unique_user("intruder")
    created = conversation_created(alice, "alice's")
    await projection.conversation_created(created)
    before = await _conversation(stack, created.conversation_id)
    intruding = message_created(mallory, created.conversation_id, "mine now")

    with caplog.at_level(logging.WARNING, logger="chatbus_conversation.projection"):
        assert await projection.message_created(intruding) is False
    assert "names another user's conversation" in caplog.text
    assert await _conversation(stack, created.conversation_id) == before
    rows = await stack.fetch(
        "SELECT 1 FROM conversation.messages WHERE id = $1", intruding.message_id
    )
    assert rows == []


def _updated(user: str, conversation_id: uuid.UUID, revision: int) -> ConversationUpdated:
    return ConversationUpdated(
        event_id=uuid.uuid4(),
        user_id=user,
        conversation_id=conversation_id,
        revision=revision,
        title=f"title {revision}",
        title_source="user",
        settings=ChatSettings(model=f"model-{revision}", memory=revision % 2 == 0),
        active_message_id=None,
        updated_at=utc_now() + timedelta(seconds=revision),
    )


async def test_the_newest_update_wins_whatever_the_order_and_only_for_the_owner(
    stack: Stack, projection: Projection
) -> None:
    user = unique_user("updates")
    created = conversation_created(user, "first title")
    await projection.conversation_created(created)
    await projection.conversation_created(created)  # redelivered: nothing changes

    await projection.conversation_updated(_updated(user, created.conversation_id, 2))
    await projection.conversation_updated(_updated(user, created.conversation_id, 1))
    await projection.conversation_updated(
        _updated(unique_user("other"), created.conversation_id, 3)
    )
    stored = await _conversation(stack, created.conversation_id)
    assert (stored["title"], stored["title_source"], stored["model"], stored["memory"]) == (
        "title 2",
        "user",
        "model-2",
        True,
    )

    deleted = ConversationDeleted(
        event_id=uuid.uuid4(),
        user_id=user,
        conversation_id=created.conversation_id,
        deleted_at=utc_now(),
    )
    await projection.conversation_deleted(deleted)
    rows = await stack.fetch(
        "SELECT deleted_at FROM conversation.conversations WHERE id = $1", created.conversation_id
    )
    assert rows[0]["deleted_at"] == deleted.deleted_at
