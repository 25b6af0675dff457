"""Semantic and hybrid `GET /v1/search` over 1,000 messages of two users."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx
import pytest
from chatbus_embeddings import similarity

from .eventbus import connected_bus, publish_conversation, publish_message
from .stack import Stack

pytestmark = pytest.mark.integration

TARGET = "My router keeps dropping the wifi connection every evening around nine."
PARAPHRASE = "why does my wireless internet disconnect each night?"

_SUBJECTS = ["The pasta sauce", "Our football team", "The museum tour", "My sourdough bread"]
_VERBS = ["needs", "deserves", "lacks", "got", "could use"]
_OBJECTS = ["more garlic", "a better coach", "longer opening hours", "a warmer oven", "patience"]
_TAILS = ["this week.", "according to my aunt.", "before the holidays.", "in my opinion.", "again."]
_FILLER = [" ".join(words) for words in itertools.product(_SUBJECTS, _VERBS, _OBJECTS, _TAILS)]


async def _seed(stack: Stack, user: str, target: bool) -> tuple[set[uuid.UUID], uuid.UUID]:
    """500 messages of `user` in 10 conversations; (conversation ids, the target's id)."""
    conversations: set[uuid.UUID] = set()
    target_id = uuid.uuid4()
    async with connected_bus(stack) as bus:
        for number in range(10):
            conversation_id = await publish_conversation(bus, user, f"chat {number}")
            conversations.add(conversation_id)
            for index in range(50):
                content = _FILLER[(number * 50 + index) % len(_FILLER)]
                if number == 3 and index == 17:
                    content = TARGET if target else content
                message_id = await publish_message(bus, user, conversation_id, content)
                if number == 3 and index == 17:
                    target_id = message_id
    return conversations, target_id


async def _search(stack: Stack, user: str, **params: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers) as http:
        response = await http.get("/v1/search", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_paraphrase_finds_the_message_and_never_another_users(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    alice_conversations, target_id = await _seed(stack, alice, target=True)
    bob_conversations, bob_target = await _seed(stack, bob, target=True)  # the same text

    async def all_embedded() -> bool:
        rows = await stack.fetch(
            "SELECT count(*) AS n FROM embeddings.message_embeddings WHERE user_id = ANY($1)",
            [alice, bob],
        )
        return bool(rows[0]["n"] == 1_000)

    await stack.wait_for(all_embedded, within_seconds=180)

    for mode in ("semantic", "hybrid"):
        body = await _search(stack, alice, q=PARAPHRASE, mode=mode, limit=10)
        hits = body["hits"]
        assert hits, mode
        assert hits[0]["message_id"] == str(target_id), (mode, hits[:3])
        assert "semantic" in hits[0]["matched_by"]
        assert hits[0]["similarity"] > 0.4
        assert body["semantic"] is True
        assert {uuid.UUID(h["conversation_id"]) for h in hits} <= alice_conversations
        assert str(bob_target) not in {h["message_id"] for h in hits}

    # The same through the HNSW index (the path of users with very many messages).
    monkeypatch.setattr(similarity, "EXACT_SEARCH_MAX_ROWS", 0)
    indexed = (await _search(stack, alice, q=PARAPHRASE, mode="semantic", limit=10))["hits"]
    assert indexed[0]["message_id"] == str(target_id), indexed[:3]
    assert {uuid.UUID(h["conversation_id"]) for h in indexed} <= alice_conversations
    monkeypatch.undo()

    # Bob finds his own copy, never Alice's.
    bob_hits = (await _search(stack, bob, q=PARAPHRASE, mode="semantic"))["hits"]
    assert bob_hits[0]["message_id"] == str(bob_target)
    assert {uuid.UUID(h["conversation_id"]) for h in bob_hits} <= bob_conversations

    # Scoped to one conversation that does not hold it: the target is not there.
    other = next(iter(alice_conversations - {uuid.UUID(hits[0]["conversation_id"])}))
    scoped = await _search(stack, alice, q=PARAPHRASE, mode="semantic", conversation_id=other)
    assert all(h["conversation_id"] == str(other) for h in scoped["hits"])
    assert str(target_id) not in {h["message_id"] for h in scoped["hits"]}


async def test_hybrid_ranks_a_keyword_and_meaning_match_first(stack: Stack) -> None:
    user = f"hybrid-{uuid.uuid4().hex[:8]}"
    async with connected_bus(stack) as bus:
        conversation_id = await publish_conversation(bus, user, "notes")
        texts = [
            "The invoice for the kitchen renovation arrived today.",
            "Kubernetes pods restart when the liveness probe fails.",
            "Remember to water the tomato plants.",
            "The liveness check of the container keeps failing and it restarts.",
        ]
        ids = [await publish_message(bus, user, conversation_id, text) for text in texts]

    async def embedded() -> bool:
        rows = await stack.fetch(
            "SELECT count(*) AS n FROM embeddings.message_embeddings WHERE user_id = $1", user
        )
        return bool(rows[0]["n"] == len(texts))

    await stack.wait_for(embedded, within_seconds=60)
    body = await _search(stack, user, q="liveness probe restarts")
    first = body["hits"][0]
    assert first["message_id"] == str(ids[1])
    assert first["matched_by"] == ["keyword", "semantic"]
    assert "<mark>" in first["snippet"]
    # The other liveness message matches by meaning (and a keyword); the rest do not.
    assert {h["message_id"] for h in body["hits"][:2]} == {str(ids[1]), str(ids[3])}
    keyword_only = await _search(stack, user, q="liveness probe restarts", mode="keyword")
    assert all(h["matched_by"] == ["keyword"] for h in keyword_only["hits"])
    assert keyword_only["semantic"] is False
