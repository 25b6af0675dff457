"""Issue 4's acceptance tests: conversation management on real NATS, Postgres and services."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
import pytest
from chatbus_contracts.common import derived_id, utc_now
from chatbus_contracts.events import ConversationCreated, Event, MessageCreated
from websockets.asyncio.client import ClientConnection, connect

from .stack import Stack, unique_user
from .wsclient import Turn, read_turn, receive, receive_live, send

pytestmark = pytest.mark.integration


@asynccontextmanager
async def _socket(stack: Stack, user: str) -> AsyncIterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    async with connect(stack.ws_url, additional_headers=headers) as ws:
        yield ws


async def _turn(ws: ClientConnection, **frame: Any) -> Turn:
    await send(ws, {"type": "chat.send", "id": uuid.uuid4().hex, **frame})
    turn = await read_turn(ws)
    assert turn.error is None, turn.error
    return turn


def _prompt_of(stack: Stack, last_user_content: str) -> list[tuple[str, str]]:
    """The messages the provider received for the turn that ended with this user message."""
    bodies = [
        r.body["messages"]
        for r in stack.emulator.requests()
        if r.body.get("messages") and r.body["messages"][-1]["content"] == last_user_content
    ]
    assert bodies, f"no provider request ended with {last_user_content!r}"
    return [(m["role"], m["content"]) for m in bodies[-1]]


async def test_pagination_returns_each_of_250_conversations_once_newest_first(
    stack: Stack,
) -> None:
    user = unique_user("pager")
    async with stack.api(user) as api:
        created = []
        for start in range(0, 250, 25):
            responses = await asyncio.gather(
                *(
                    api.post("/v1/conversations", json={"title": f"c{n}"})
                    for n in range(start, start + 25)
                )
            )
            assert all(r.status_code == 201 for r in responses), responses[0].text
            created.extend(r.json() for r in responses)
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 37}
            if cursor:
                params["cursor"] = cursor
            page = (await api.get("/v1/conversations", params=params)).json()
            seen.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == 250
    assert {c["id"] for c in seen} == {c["id"] for c in created}
    keys = [(c["created_at"], c["id"]) for c in seen]
    assert keys == sorted(keys, reverse=True)


async def test_bad_listing_and_bodies_answer_422_naming_the_field(stack: Stack) -> None:
    async with stack.api(unique_user("strict")) as api:
        cases = [
            (api.get("/v1/conversations", params={"cursor": "bm90LWEtY3Vyc29y"}), "cursor"),
            (api.get("/v1/conversations", params={"limit": 0}), "limit"),
            (api.get("/v1/conversations", params={"limit": 101}), "limit"),
            (api.post("/v1/conversations", json={"title": "x" * 201}), "title"),
            (api.post("/v1/conversations", json={"colour": "red"}), "colour"),
            (api.post("/v1/conversations", json={"temperature": 3}), "temperature"),
            (api.put("/v1/preferences", json={"default_model": 7}), "default_model"),
            (api.post("/v1/conversations", json={"title": "nul\u0000"}), "title"),
            (api.get("/v1/search", params={"q": "nul\x00"}), "query"),
        ]
        for request, field in cases:
            response = await request
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid_request"
            assert field in [f["field"] for f in error["fields"]], error
        conversation = (await api.post("/v1/conversations", json={})).json()
        for body, field in (({"title": "y" * 201}, "title"), ({"unknown": 1}, "unknown")):
            response = await api.patch(f"/v1/conversations/{conversation['id']}", json=body)
            assert response.status_code == 422
            assert field in [f["field"] for f in response.json()["error"]["fields"]]


async def test_a_rename_reaches_a_second_socket_of_the_user_within_a_second(stack: Stack) -> None:
    user = unique_user("tabs")
    async with _socket(stack, user) as first_tab, _socket(stack, user) as second_tab:
        turn = await _turn(first_tab, content="Plan a trip to Lisbon")
        conversation_id = turn.accepted["conversation_id"]
        created = await receive_live(second_tab, "conversation.created", within_seconds=5)
        assert created["conversation_id"] == conversation_id
        # The automatic title of the first turn arrives as an update too.
        titled = await receive_live(second_tab, "conversation.updated", within_seconds=5)
        assert titled["conversation_id"] == conversation_id and titled["title"]
        async with stack.api(user) as api:
            response = await api.patch(
                f"/v1/conversations/{conversation_id}", json={"title": "Lisbon in May"}
            )
            assert response.status_code == 200, response.text
            renamed = await receive_live(second_tab, "conversation.updated", within_seconds=1)
        assert renamed["title"] == "Lisbon in May"
        # The socket that made the change hears it as well (after the automatic title's).
        async with asyncio.timeout(5):
            while (await receive_live(first_tab, "conversation.updated", 5))["title"] != (
                "Lisbon in May"
            ):
                pass


async def test_branch_edit_and_regenerate_build_a_tree_and_prompts_follow_the_active_branch(
    stack: Stack,
) -> None:
    user = unique_user("brancher")
    tag = uuid.uuid4().hex[:6]
    async with _socket(stack, user) as ws:
        one = await _turn(ws, content=f"q1 {tag}")
        conversation_id = one.accepted["conversation_id"]
        two = await _turn(ws, conversation_id=conversation_id, content=f"q2 {tag}")
        # Edit q2: a sibling of q2 under a1.
        edit = await _turn(
            ws,
            conversation_id=conversation_id,
            edit_message_id=two.accepted["user_message_id"],
            content=f"q2-edited {tag}",
        )
        assert _prompt_of(stack, f"q2-edited {tag}") == [
            ("user", f"q1 {tag}"),
            ("assistant", one.text),
            ("user", f"q2-edited {tag}"),
        ]
        # Regenerate the answer to q1: a sibling of a1.
        await send(
            ws,
            {
                "type": "chat.regenerate",
                "id": uuid.uuid4().hex,
                "conversation_id": conversation_id,
                "message_id": one.accepted["assistant_message_id"],
            },
        )
        again = await read_turn(ws)
        assert again.error is None, again.error
        assert again.accepted["user_message_id"] == one.accepted["assistant_message_id"]
        # The next turn continues the regenerated branch only.
        three = await _turn(ws, conversation_id=conversation_id, content=f"q3 {tag}")
        assert _prompt_of(stack, f"q3 {tag}") == [
            ("user", f"q1 {tag}"),
            ("assistant", again.text),
            ("user", f"q3 {tag}"),
        ]
        # A branch after a named message (a1) also holds only that branch.
        await _turn(
            ws,
            conversation_id=conversation_id,
            parent_message_id=one.accepted["assistant_message_id"],
            content=f"q2-branch {tag}",
        )
        assert _prompt_of(stack, f"q2-branch {tag}") == [
            ("user", f"q1 {tag}"),
            ("assistant", one.text),
            ("user", f"q2-branch {tag}"),
        ]
        # Anchors of the wrong role are refused on the turn, and the socket goes on.
        for anchor, message in (
            ("edit_message_id", one.accepted["assistant_message_id"]),
            ("parent_message_id", one.accepted["user_message_id"]),
        ):
            frame = {"type": "chat.send", "id": uuid.uuid4().hex, "content": "no"}
            await send(ws, frame | {"conversation_id": conversation_id, anchor: message})
            refused = await read_turn(ws)
            assert refused.error is not None and refused.error["code"] == "invalid_request"

    async with stack.api(user) as api:

        async def all_stored() -> bool:
            detail = (await api.get(f"/v1/conversations/{conversation_id}")).json()
            return bool(detail["message_count"] == 11)

        await stack.wait_for(all_stored)
        detail = (await api.get(f"/v1/conversations/{conversation_id}")).json()
    parents = {m["id"]: m["parent_id"] for m in detail["messages"]}
    q1, a1 = one.accepted["user_message_id"], one.accepted["assistant_message_id"]
    a1_again = again.end["message_id"] if again.end else None
    assert parents[q1] is None
    assert parents[a1] == q1 and parents[a1_again] == q1
    assert parents[two.accepted["user_message_id"]] == a1
    assert parents[edit.accepted["user_message_id"]] == a1
    assert parents[three.accepted["user_message_id"]] == a1_again
    # q1 a1 | q2 a2 | q2' a2' | a1' | q3 a3 | q2'' a2'' (refused turns store no message)
    assert len(detail["messages"]) == 11
    assert detail["message_count"] == 11
    assert detail["active_message_id"] == detail["messages"][-1]["id"]


async def _publish(js: Any, event: Event) -> None:
    await js.publish(
        event.subject,
        event.model_dump_json().encode(),
        headers={"Nats-Msg-Id": str(event.event_id)},
    )


async def _seed_conversation(js: Any, user: str, index: int, word: str) -> uuid.UUID:
    """A conversation of four messages whose third holds `word`, published as events."""
    conversation_id = uuid.uuid4()
    await _publish(
        js,
        ConversationCreated(
            event_id=uuid.uuid4(),
            user_id=user,
            conversation_id=conversation_id,
            title=f"seeded {index}",
            created_at=utc_now(),
        ),
    )
    parent = None
    for n in range(1, 5):
        text = f"message {n} about gardening tools" + (f" and the {word}" if n == 3 else "")
        message_id = derived_id(conversation_id, n)
        await _publish(
            js,
            MessageCreated(
                event_id=uuid.uuid4(),
                user_id=user,
                message_id=message_id,
                conversation_id=conversation_id,
                request_id=uuid.uuid4(),
                role="user" if n % 2 else "assistant",
                content=text,
                parent_id=parent,
                created_at=utc_now(),
            ),
        )
        parent = message_id
    return conversation_id


async def test_search_finds_message_three_of_fifty_conversations_and_no_other_users(
    stack: Stack,
) -> None:
    alice, mallory = unique_user("searcher"), unique_user("other")
    word = f"zephyrine{uuid.uuid4().hex[:6]}"
    bus = await nats.connect(stack.infra.nats_url)
    try:
        js = bus.jetstream()
        mine = [await _seed_conversation(js, alice, n, word) for n in range(50)]
        await _seed_conversation(js, mallory, 99, word)
    finally:
        await bus.close()
    async with stack.api(alice) as api:

        async def all_found() -> bool:
            response = await api.get("/v1/search", params={"q": word, "limit": 100})
            return len(response.json()["hits"]) >= 50

        await stack.wait_for(all_found)
        hits = (await api.get("/v1/search", params={"q": word, "limit": 100})).json()["hits"]
    assert len(hits) == 50
    assert {uuid.UUID(h["conversation_id"]) for h in hits} == set(mine)
    assert all(h["message_id"] == str(derived_id(h["conversation_id"], 3)) for h in hits)
    assert all(f"<mark>{word}</mark>" in h["snippet"] for h in hits)
    ranks = [h["rank"] for h in hits]
    assert ranks == sorted(ranks, reverse=True)


async def test_another_users_conversation_is_404_on_every_route(stack: Stack) -> None:
    owner, intruder = unique_user("owner"), unique_user("intruder")
    async with _socket(stack, owner) as ws:
        turn = await _turn(ws, content="my secret plans")
    conversation_id = turn.accepted["conversation_id"]
    path = f"/v1/conversations/{conversation_id}"
    async with stack.api(intruder) as api:
        for response in (
            await api.get(path),
            await api.patch(path, json={"title": "mine now"}),
            await api.delete(path),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "conversation_not_found"
        listing = (await api.get("/v1/conversations")).json()
        assert listing["items"] == []
        found = await api.get(
            "/v1/search", params={"q": "secret", "conversation_id": conversation_id}
        )
        assert found.json()["hits"] == []
    async with _socket(stack, intruder) as ws:
        frames: list[dict[str, Any]] = [
            {"type": "chat.send", "id": "s1", "conversation_id": conversation_id, "content": "hi"},
            {
                "type": "chat.regenerate",
                "id": "r1",
                "conversation_id": conversation_id,
                "message_id": turn.accepted["assistant_message_id"],
            },
        ]
        for frame in frames:
            await send(ws, frame)
            error = await receive(ws)
            assert (error["type"], error["code"], error["id"]) == (
                "chat.error",
                "conversation_not_found",
                frame["id"],
            )
        # Anchors in the intruder's own conversation that name the owner's messages.
        own = await _turn(ws, content="my own chat")
        foreign = turn.accepted["assistant_message_id"]
        anchored: list[dict[str, Any]] = [
            {"type": "chat.send", "content": "x", "parent_message_id": foreign},
            {
                "type": "chat.send",
                "content": "x",
                "edit_message_id": turn.accepted["user_message_id"],
            },
            {"type": "chat.regenerate", "message_id": foreign},
        ]
        for frame in anchored:
            frame |= {"id": uuid.uuid4().hex, "conversation_id": own.accepted["conversation_id"]}
            await send(ws, frame)
            refused = await read_turn(ws)
            assert refused.error is not None and refused.error["code"] == "message_not_found"
    async with stack.api(owner) as api:
        assert (await api.get(path)).json()["title"] != "mine now"
        found = await api.get(
            "/v1/search", params={"q": "secret", "conversation_id": conversation_id}
        )
        assert len(found.json()["hits"]) >= 1  # the owner finds what the intruder could not


async def test_delete_removes_from_list_search_and_embeddings(stack: Stack) -> None:
    user = unique_user("deleter")
    word = f"quokka{uuid.uuid4().hex[:6]}"
    async with _socket(stack, user) as ws:
        turn = await _turn(ws, content=f"tell me about the <img src=x onerror=alert(1)> {word}")
    conversation_id = turn.accepted["conversation_id"]

    async def embedded() -> bool:
        rows = await stack.fetch(
            "SELECT count(*) AS n FROM embeddings.message_embeddings WHERE conversation_id = $1",
            uuid.UUID(conversation_id),
        )
        return bool(rows[0]["n"] == 2)

    await stack.wait_for(embedded)
    async with stack.api(user) as api:
        hits = (await api.get("/v1/search", params={"q": word})).json()["hits"]
        assert hits and all(f"<mark>{word}</mark>" in hit["snippet"] for hit in hits)
        assert all("&lt;img" in hit["snippet"] and "<img" not in hit["snippet"] for hit in hits)
        async with _socket(stack, user) as other_tab:
            response = await api.delete(f"/v1/conversations/{conversation_id}")
            assert response.status_code == 200, response.text
            deleted = await receive_live(other_tab, "conversation.deleted", within_seconds=5)
            assert deleted["conversation_id"] == conversation_id
        assert (await api.get(f"/v1/conversations/{conversation_id}")).status_code == 404
        assert (await api.delete(f"/v1/conversations/{conversation_id}")).status_code == 404
        listing = (await api.get("/v1/conversations")).json()
        assert conversation_id not in [c["id"] for c in listing["items"]]
        assert (await api.get("/v1/search", params={"q": word})).json()["hits"] == []

    async def vectors_gone() -> bool:
        return not await embedded() and not (
            await stack.fetch(
                "SELECT 1 FROM embeddings.message_embeddings WHERE conversation_id = $1",
                uuid.UUID(conversation_id),
            )
        )

    await stack.wait_for(vectors_gone)


async def test_settings_preferences_and_counters_shape_the_turn(stack: Stack) -> None:
    user = unique_user("settler")
    tag = uuid.uuid4().hex[:6]
    async with stack.api(user) as api:
        prefs = {
            "default_system_prompt": f"Answer like a pirate {tag}",
            "default_model": None,
            "default_memory": None,
        }
        assert (await api.put("/v1/preferences", json=prefs)).json() == prefs
        async with _socket(stack, user) as ws:
            first = await _turn(ws, content=f"hello {tag}")
            assert _prompt_of(stack, f"hello {tag}")[0] == (
                "system",
                prefs["default_system_prompt"],
            )
            conversation_id = first.accepted["conversation_id"]
            response = await api.patch(
                f"/v1/conversations/{conversation_id}",
                json={"system_prompt": f"Answer in haiku {tag}", "max_tokens": 50},
            )
            assert response.json()["settings"]["system_prompt"] == f"Answer in haiku {tag}"
            await _turn(ws, conversation_id=conversation_id, content=f"again {tag}")
            assert _prompt_of(stack, f"again {tag}")[0] == ("system", f"Answer in haiku {tag}")
            # A chat.send override holds for its own turn only.
            await _turn(
                ws, conversation_id=conversation_id, content=f"once {tag}", system=f"terse {tag}"
            )
            assert _prompt_of(stack, f"once {tag}")[0] == ("system", f"terse {tag}")
        max_tokens = [
            r.body.get("max_tokens") or r.body.get("max_completion_tokens")
            for r in stack.emulator.requests()
            if r.body.get("messages") and r.body["messages"][-1]["content"] == f"again {tag}"
        ]
        assert max_tokens == [50]

        async def counted() -> bool:
            view = (await api.get(f"/v1/conversations/{conversation_id}")).json()
            return bool(view["message_count"] == 6)

        await stack.wait_for(counted)
        view = (await api.get(f"/v1/conversations/{conversation_id}")).json()
    stored = await stack.fetch(
        "SELECT sum(prompt_tokens + completion_tokens) AS tokens, sum(cost_usd) AS cost "
        "FROM conversation.messages WHERE conversation_id = $1",
        uuid.UUID(conversation_id),
    )
    assert view["total_tokens"] == stored[0]["tokens"] > 0
    assert float(view["cost_usd"]) == pytest.approx(float(stored[0]["cost"]))
