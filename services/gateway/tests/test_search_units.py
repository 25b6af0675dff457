"""Pure parts of search and embeddings: rank fusion, splitting a request into parts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from chatbus_contracts.conversations import SearchHit
from chatbus_contracts.embeddings import PART_MAX_CHARS, PART_MAX_ITEMS, SimilarMessage
from chatbus_gateway.embeddings import split_parts
from chatbus_gateway.fusion import fuse

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _hit(message_id: uuid.UUID, snippet: str = "text") -> SearchHit:
    return SearchHit(
        conversation_id=uuid.uuid4(),
        conversation_title="t",
        message_id=message_id,
        role="user",
        snippet=snippet,
        rank=0.5,
        created_at=NOW,
    )


def _similar(message_id: uuid.UUID, similarity: float) -> SimilarMessage:
    return SimilarMessage(
        message_id=message_id,
        conversation_id=uuid.uuid4(),
        role="user",
        content="text",
        similarity=similarity,
        created_at=NOW,
    )


def test_a_message_both_rankings_like_comes_first() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    keyword = [_hit(a, "<mark>a</mark>"), _hit(b)]
    semantic = [_similar(c, 0.9), _similar(b, 0.8)]
    fused = fuse(keyword, semantic, [_hit(c), _hit(b)], limit=10)
    assert [h.message_id for h in fused] == [b, a, c]
    assert fused[0].matched_by == ["keyword", "semantic"]
    assert fused[0].similarity == 0.8
    assert fused[1].snippet == "<mark>a</mark>" and fused[1].similarity is None
    assert fused[2].matched_by == ["semantic"]


def test_a_semantic_match_without_the_conversation_services_row_is_dropped() -> None:
    vouched, unvouched = uuid.uuid4(), uuid.uuid4()
    semantic = [_similar(unvouched, 0.95), _similar(vouched, 0.5)]
    fused = fuse([], semantic, [_hit(vouched)], limit=10)
    assert [h.message_id for h in fused] == [vouched]


def test_limit_applies_after_fusion() -> None:
    ids = [uuid.uuid4() for _ in range(5)]
    fused = fuse([_hit(i) for i in ids], [], [], limit=2)
    assert [h.message_id for h in fused] == ids[:2]


def test_parts_hold_at_most_their_items_and_characters_in_order() -> None:
    texts = [f"t{i}" for i in range(2 * PART_MAX_ITEMS + 3)]
    parts = split_parts(texts)
    assert [len(part) for _, part in parts] == [PART_MAX_ITEMS, PART_MAX_ITEMS, 3]
    assert [offset for offset, _ in parts] == [0, PART_MAX_ITEMS, 2 * PART_MAX_ITEMS]
    big = ["x" * (PART_MAX_CHARS // 2 + 1)] * 3
    assert [len(part) for _, part in split_parts(big)] == [1, 1, 1]
    assert [text for _, part in split_parts(texts) for text in part] == texts
