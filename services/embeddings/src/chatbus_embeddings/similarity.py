"""Nearest stored messages of one user, by cosine similarity.

Search is scoped to one user, so it filters first: a user's rows are found by the
`(user_id, conversation_id)` index and compared exactly, which for up to
`EXACT_SEARCH_MAX_ROWS` messages is fast and never misses. Above that the query goes
through the dimension's partial HNSW index (`dimensions = 384`, `vector(384)` are
literals so the planner can use it), with pgvector's iterative scan walking the graph
until enough rows pass the user filter; that path is approximate, as HNSW is.
"""

from __future__ import annotations

from chatbus_contracts.embeddings import FindSimilar, SimilarMessage
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

EXACT_SEARCH_MAX_ROWS = 20_000
# Candidates an HNSW scan keeps (pgvector's default is 40). Messages repeat (greetings,
# pasted text), and many identical vectors make the graph harder to walk: a wider beam
# keeps a unique nearest message from being missed, for a few ms at this path's sizes.
EF_SEARCH = 400
# Hits carry at most this much of each message (memory quotes 1,000; search uses ids),
# so an answer of 100 hits stays far below NATS's 1 MB.
CONTENT_CLIP_CHARS = 2_000

_MINE = """
FROM embeddings.message_embeddings
WHERE dimensions = {n} AND model = :model AND user_id = :user_id AND content IS NOT NULL
  {scope}
"""

_EXACT = """
WITH mine AS MATERIALIZED (
  SELECT message_id, conversation_id, role, left(content, {clip}) AS content, created_at,
         embedding::vector({n}) AS embedding
  {mine}
)
SELECT message_id, conversation_id, role, content, created_at,
       1 - (embedding <=> CAST(:query AS vector({n}))) AS similarity
FROM mine
ORDER BY embedding <=> CAST(:query AS vector({n}))
LIMIT :limit
"""

# `relaxed_order` iterative scans may return rows slightly out of order (pgvector's
# README): `find_similar` sorts the hits again.
_INDEXED = """
SELECT message_id, conversation_id, role, left(content, {clip}) AS content, created_at,
       1 - (embedding::vector({n}) <=> CAST(:query AS vector({n}))) AS similarity
{mine}
ORDER BY embedding::vector({n}) <=> CAST(:query AS vector({n}))
LIMIT :limit
"""


async def find_similar(
    engine: AsyncEngine, query: FindSimilar, vector: list[float], model: str
) -> list[SimilarMessage]:
    """The user's messages embedded by `model`, most similar first, above the threshold."""
    scope, params = _scope(query)
    mine = _MINE.format(n=len(vector), scope=scope)
    params |= {"model": model, "user_id": query.user_id}
    async with engine.begin() as connection:
        exact = await _count(connection, mine, params) <= EXACT_SEARCH_MAX_ROWS
        if not exact:
            await _prepare_index_scan(connection, query.limit)
        template = _EXACT if exact else _INDEXED
        rows = await connection.execute(
            text(template.format(n=len(vector), mine=mine, clip=CONTENT_CLIP_CHARS)),
            params | {"query": _literal(vector), "limit": query.limit},
        )
        hits = [SimilarMessage.model_validate(row, from_attributes=True) for row in rows]
    # A relaxed-order index scan may return neighbours slightly out of order.
    hits.sort(key=lambda hit: hit.similarity, reverse=True)
    return [hit for hit in hits if hit.similarity >= query.min_similarity]


async def _count(connection: AsyncConnection, mine: str, params: dict[str, object]) -> int:
    limit = EXACT_SEARCH_MAX_ROWS + 1
    counted = await connection.scalar(
        text(f"SELECT count(*) FROM (SELECT 1 {mine} LIMIT {limit}) AS limited"), params
    )
    return int(counted or 0)


async def _prepare_index_scan(connection: AsyncConnection, limit: int) -> None:
    await connection.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    await connection.execute(text(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, 4 * limit)}"))


def _scope(query: FindSimilar) -> tuple[str, dict[str, object]]:
    clauses: list[str] = []
    params: dict[str, object] = {}
    if query.conversation_id is not None:
        clauses.append("AND conversation_id = :conversation_id")
        params["conversation_id"] = query.conversation_id
    if query.exclude_conversation_id is not None:
        clauses.append("AND conversation_id <> :exclude_conversation_id")
        params["exclude_conversation_id"] = query.exclude_conversation_id
    return " ".join(clauses), params


def _literal(vector: list[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"
