"""`GET /v1/search`: the caller's messages by keyword, by meaning, or both (default).

    hybrid    embeddings.query.similar ─┐
              conversation.query.search ┴─ fused by reciprocal rank (fusion.py)
    keyword   conversation.query.search only (Postgres full-text, <mark> snippets)
    semantic  embeddings.query.similar, titled and vetted by the conversation service

Without an answer from the embeddings service, hybrid degrades to keyword results and
says so (`semantic: false`); `mode=semantic` answers 503.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal
from uuid import UUID

from chatbus_contracts.conversations import SearchResults
from chatbus_contracts.embeddings import FindSimilar, SimilarMessage
from fastapi import APIRouter, Query
from nats.errors import Error as NatsError

from .deps import CurrentUser, State
from .errors import unavailable
from .fusion import fuse
from .state import GatewayState

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["conversations"])
SearchMode = Literal["hybrid", "keyword", "semantic"]


@router.get("/search", response_model=SearchResults, response_model_exclude={"included"})
async def search_messages(
    user_id: CurrentUser,
    state: State,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    conversation_id: UUID | None = None,
    mode: SearchMode = "hybrid",
    min_similarity: Annotated[float, Query(ge=-1, le=1)] = 0.3,
) -> SearchResults:
    """The caller's best-matching messages; keyword matches marked `<mark>` in the snippet."""
    semantic: list[SimilarMessage] | None = None
    if mode != "keyword":
        query = FindSimilar(
            user_id=user_id,
            query=q,
            limit=min(2 * limit, 100),
            min_similarity=min_similarity,
            conversation_id=conversation_id,
        )
        semantic = await _similar(state, query, required=mode == "semantic")
    try:
        results = await state.conversations.search(
            user_id,
            q,
            limit,
            conversation_id,
            include_message_ids=[hit.message_id for hit in semantic or []],
        )
    except (TimeoutError, NatsError) as error:
        raise unavailable() from error
    keyword = [] if mode == "semantic" else results.hits
    hits = fuse(keyword, semantic or [], results.included, limit)
    return SearchResults(hits=hits, semantic=semantic is not None)


async def _similar(
    state: GatewayState, query: FindSimilar, *, required: bool
) -> list[SimilarMessage] | None:
    """Semantic matches; None when the embeddings service did not answer and may be skipped."""
    try:
        return (await state.embeddings.similar(query)).hits
    except (TimeoutError, NatsError) as error:
        if required:
            raise unavailable() from error
        logger.warning("semantic search unavailable (%s); keyword results only", error)
        return None
