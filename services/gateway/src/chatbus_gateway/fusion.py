"""Hybrid search: keyword and semantic rankings fused by reciprocal rank (RRF).

Each message scores the sum of 1 / (K + position) over the rankings it appears in,
so a message both rankings like rises above one only one of them likes, and neither
ranking's raw scores (ts_rank, cosine) need to be comparable.
"""

from __future__ import annotations

from uuid import UUID

from chatbus_contracts.conversations import SearchHit
from chatbus_contracts.embeddings import SimilarMessage

K = 60  # the constant of Cormack et al.; damps the weight of the very first positions


def fuse(
    keyword: list[SearchHit],
    semantic: list[SimilarMessage],
    included: list[SearchHit],
    limit: int,
) -> list[SearchHit]:
    """The best `limit` messages; a semantic match counts only if `included` vouches for it.

    `included` are the conversation service's rows for the semantic matches: messages
    the caller owns in live conversations, with title and plain snippet.
    """
    rows = {hit.message_id: hit for hit in included} | {hit.message_id: hit for hit in keyword}
    scores: dict[UUID, float] = {}
    matched: dict[UUID, list[str]] = {}
    for position, hit in enumerate(keyword):
        scores[hit.message_id] = 1 / (K + position + 1)
        matched[hit.message_id] = ["keyword"]
    similarity: dict[UUID, float] = {}
    for position, similar in enumerate(m for m in semantic if m.message_id in rows):
        scores[similar.message_id] = scores.get(similar.message_id, 0) + 1 / (K + position + 1)
        matched.setdefault(similar.message_id, []).append("semantic")
        similarity[similar.message_id] = similar.similarity
    best = sorted(scores, key=lambda message_id: scores[message_id], reverse=True)[:limit]
    return [
        rows[message_id].model_copy(
            update={
                "rank": round(scores[message_id], 6),
                "similarity": similarity.get(message_id),
                "matched_by": matched[message_id],
            }
        )
        for message_id in best
    ]
