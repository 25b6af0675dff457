"""Retrieval memory in the conversation service: the setting and its default, the context
an answer was given, and the search query answering the semantic matches it is handed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from chatbus_contracts import subjects
from chatbus_contracts.common import utc_now
from chatbus_contracts.conversations import SearchMessages, SearchResults
from chatbus_contracts.events import ConversationDeleted
from chatbus_runtime.bus import publish_event
from faststream.nats import NatsBroker
from websockets.asyncio.client import connect

from .eventbus import connected_bus, publish_conversation, publish_message
from .stack import Stack, unique_user
from .wsclient import read_turn, send

pytestmark = pytest.mark.integration


@pytest.fixture
async def bus(stack: Stack) -> AsyncIterator[NatsBroker]:
    async with connected_bus(stack, "memory-test") as broker:
        yield broker


async def _stored(stack: Stack, *message_ids: uuid.UUID) -> None:
    async def all_there() -> bool:
        rows = await stack.fetch(
            "SELECT count(*) AS n FROM conversation.messages WHERE id = ANY($1::uuid[])",
            list(message_ids),
        )
        return bool(rows[0]["n"] == len(message_ids))

    await stack.wait_for(all_there)


async def test_default_memory_applies_to_new_conversations_and_their_own_setting_wins(
    stack: Stack, bus: NatsBroker
) -> None:
    user = unique_user("rememberer")
    async with stack.api(user) as api:
        assert (await api.get("/v1/preferences")).json()["default_memory"] is None
        put = await api.put("/v1/preferences", json={"default_memory": True})
        assert put.status_code == 200, put.text
        assert (await api.get("/v1/preferences")).json()["default_memory"] is True

        created = await api.post("/v1/conversations", json={"title": "remembers"})
        assert created.status_code == 201, created.text
        assert created.json()["settings"]["memory"] is True
        opted_out = await api.post("/v1/conversations", json={"memory": False})
        assert opted_out.json()["settings"]["memory"] is False
        # A conversation a chat turn starts arrives as an event: the default applies too.
        headers = {"Authorization": f"Bearer {stack.token(user)}"}
        async with connect(stack.ws_url, additional_headers=headers) as ws:
            await send(ws, {"type": "chat.send", "id": "first", "content": "started by a turn"})
            turn = await read_turn(ws)
        assert turn.end is not None, turn.error
        by_event = turn.accepted["conversation_id"]

        async def applied() -> bool:
            found = await api.get(f"/v1/conversations/{by_event}")
            return found.status_code == 200 and found.json()["settings"]["memory"] is True

        await stack.wait_for(applied, within_seconds=10)
        rows = await stack.fetch(
            "SELECT id, memory FROM conversation.conversations WHERE user_id = $1", user
        )
        stored = {str(r["id"]): r["memory"] for r in rows}
        assert stored == {
            created.json()["id"]: True,
            opted_out.json()["id"]: False,
            by_event: True,
        }


async def test_patching_memory_off_is_kept(stack: Stack) -> None:
    user = unique_user("forgetter")
    async with stack.api(user) as api:
        await api.put("/v1/preferences", json={"default_memory": True})
        conversation = (await api.post("/v1/conversations", json={})).json()
        path = f"/v1/conversations/{conversation['id']}"
        patched = await api.patch(path, json={"memory": False})
        assert patched.status_code == 200, patched.text
        assert patched.json()["settings"]["memory"] is False
        assert (await api.get(path)).json()["settings"]["memory"] is False


async def test_an_answers_context_message_ids_are_stored_and_shown(
    stack: Stack, bus: NatsBroker
) -> None:
    user = unique_user("recaller")
    earlier = await publish_conversation(bus, user, "earlier")
    remembered = [
        await publish_message(bus, user, earlier, "my cat is called Miso"),
        await publish_message(bus, user, earlier, "she is nine years old"),
    ]
    conversation_id = await publish_conversation(bus, user, "now")
    question = await publish_message(bus, user, conversation_id, "what is my cat called?")
    answer = await publish_message(
        bus,
        user,
        conversation_id,
        "Miso.",
        role="assistant",
        parent_id=question,
        context_message_ids=remembered,
    )
    await _stored(stack, *remembered, question, answer)
    async with stack.api(user) as api:
        detail = (await api.get(f"/v1/conversations/{conversation_id}")).json()
    context = {m["id"]: m["context_message_ids"] for m in detail["messages"]}
    assert context == {str(question): [], str(answer): [str(i) for i in remembered]}


async def _search(bus: NatsBroker, user: str, query: str, ids: list[uuid.UUID]) -> SearchResults:
    search = SearchMessages(user_id=user, query=query, include_message_ids=ids)
    reply = await bus.request(search, subjects.CONVERSATION_QUERY_SEARCH, timeout=10)
    return SearchResults.model_validate_json(reply.body)


async def test_search_includes_only_the_callers_live_messages_among_the_ids(
    stack: Stack, bus: NatsBroker
) -> None:
    alice, mallory = unique_user("includer"), unique_user("stranger")
    word = f"pelargonium{uuid.uuid4().hex[:6]}"
    live = await publish_conversation(bus, alice, "Garden <plans>")
    long_text = f"<b>{word}</b> & bold " + "x" * 300
    mine = [
        await publish_message(bus, alice, live, long_text),
        await publish_message(bus, alice, live, "short & sweet"),
    ]
    gone = await publish_conversation(bus, alice, "deleted")
    deleted = await publish_message(bus, alice, gone, f"deleted {word}")
    foreign = await publish_message(
        bus, mallory, await publish_conversation(bus, mallory, "theirs"), word
    )
    await _stored(stack, *mine, deleted, foreign)
    await publish_event(
        bus,
        ConversationDeleted(
            event_id=uuid.uuid4(), user_id=alice, conversation_id=gone, deleted_at=utc_now()
        ),
    )

    async def is_deleted() -> bool:
        rows = await stack.fetch(
            "SELECT 1 FROM conversation.conversations WHERE id = $1 AND deleted_at IS NOT NULL",
            gone,
        )
        return bool(rows)

    await stack.wait_for(is_deleted)
    ids = [mine[1], foreign, deleted, uuid.uuid4(), mine[0]]
    results = await _search(bus, alice, word, ids)
    assert [hit.message_id for hit in results.hits] == [mine[0]]
    assert f"<mark>{word}</mark>" in results.hits[0].snippet
    included: list[dict[str, Any]] = [hit.model_dump() for hit in results.included]
    assert [hit["message_id"] for hit in included] == [mine[1], mine[0]]
    assert all(hit["conversation_id"] == live for hit in included)
    assert all(hit["conversation_title"] == "Garden <plans>" for hit in included)
    assert all(hit["rank"] == 0 for hit in included)
    assert included[0]["snippet"] == "short &amp; sweet"
    long_snippet = included[1]["snippet"]
    assert long_snippet.startswith(f"&lt;b&gt;{word}&lt;/b&gt; &amp; bold xxx")
    assert "<mark>" not in long_snippet and "<b>" not in long_snippet
    assert long_snippet.count("x") < 200 < len(long_text)
    assert (await _search(bus, alice, word, [])).included == []
    assert (await _search(bus, mallory, word, ids)).included[0].message_id == foreign
