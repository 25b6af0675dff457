"""Keyword search over a user's messages: Postgres full-text search, ranked, with snippets.

Messages carry a generated `search_vector` (`to_tsvector('english', content)`, GIN
indexed); the query is parsed by `websearch_to_tsquery`, so users may write
`"exact phrase"`, `or` and `-excluded`. Ranking is `ts_rank_cd`; snippets come from
`ts_headline` on the page of hits only. Snippets are HTML-escaped (message text may hold
markup, even steered into an answer by prompt injection), then the matches wrapped in
`<mark>`: a client may render them as HTML.

`include_message_ids` (semantic matches the gateway found) are answered in `included`,
by one more query with the same ownership and deletion filters as the keyword hits:
rank 0 and a plain snippet, the escaped start of the message.
"""

from __future__ import annotations

import html
from typing import Any

from chatbus_contracts.conversations import SearchHit, SearchMessages, SearchResults
from sqlalchemy import Row, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

PLAIN_SNIPPET_CHARS = 200

_SEARCH = text(
    """
    WITH q AS (SELECT websearch_to_tsquery('english', :query) AS query),
    hits AS (
        SELECT m.id, m.conversation_id, c.title, m.role, m.created_at, m.content,
               ts_rank_cd(m.search_vector, q.query) AS rank
        FROM conversation.messages m
        JOIN conversation.conversations c ON c.id = m.conversation_id, q
        WHERE m.user_id = :user_id
          AND c.user_id = :user_id
          AND c.deleted_at IS NULL
          AND (CAST(:conversation_id AS uuid) IS NULL OR m.conversation_id = :conversation_id)
          AND m.search_vector @@ q.query
        ORDER BY rank DESC, m.created_at DESC, m.id
        LIMIT :limit
    )
    SELECT hits.id, hits.conversation_id, hits.title, hits.role, hits.created_at, hits.rank,
           ts_headline('english', hits.content, q.query,
                       'StartSel=\x02, StopSel=\x03, MaxWords=35, MinWords=12,
                        MaxFragments=2, FragmentDelimiter=" … "') AS snippet
    FROM hits, q
    ORDER BY hits.rank DESC, hits.created_at DESC, hits.id
    """
)


_INCLUDED = text(
    f"""
    SELECT m.id, m.conversation_id, c.title, m.role, m.created_at,
           left(m.content, {PLAIN_SNIPPET_CHARS + 1}) AS head
    FROM conversation.messages m
    JOIN conversation.conversations c ON c.id = m.conversation_id
    WHERE m.id = ANY(:ids)
      AND m.user_id = :user_id
      AND c.user_id = :user_id
      AND c.deleted_at IS NULL
      AND (CAST(:conversation_id AS uuid) IS NULL OR m.conversation_id = :conversation_id)
    ORDER BY array_position(:ids, m.id)
    """
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


async def search_messages(engine: AsyncEngine, search: SearchMessages) -> SearchResults:
    """The user's best-matching messages in live conversations, and those of
    `include_message_ids` that are theirs (in the order given)."""
    async with engine.connect() as connection:
        hits = await _keyword_hits(connection, search)
        included = await _included(connection, search) if search.include_message_ids else []
    return SearchResults(hits=hits, included=included)


def _filters(search: SearchMessages) -> dict[str, Any]:
    return {"user_id": search.user_id, "conversation_id": search.conversation_id}


async def _keyword_hits(connection: AsyncConnection, search: SearchMessages) -> list[SearchHit]:
    rows = await connection.execute(
        _SEARCH, {"query": search.query, "limit": search.limit, **_filters(search)}
    )
    return [_hit(row, row.rank, _marked(row.snippet)) for row in rows]


async def _included(connection: AsyncConnection, search: SearchMessages) -> list[SearchHit]:
    rows = await connection.execute(
        _INCLUDED, {"ids": search.include_message_ids, **_filters(search)}
    )
    return [_hit(row, 0.0, _plain(row.head)) for row in rows]


def _hit(row: Row[Any], rank: float, snippet: str) -> SearchHit:
    """A hit from a row of `_SEARCH` or `_INCLUDED`."""
    return SearchHit(
        message_id=row.id,
        conversation_id=row.conversation_id,
        conversation_title=row.title,
        role=row.role,
        created_at=row.created_at,
        rank=rank,
        snippet=snippet,
    )


def _escaped(text: str) -> str:
    """Message text as safe HTML (the one escaping rule of every snippet)."""
    return html.escape(text, quote=False)


def _marked(snippet: str) -> str:
    """The snippet as safe HTML: escaped text, matches in `<mark>`."""
    return _escaped(snippet).replace("\x02", "<mark>").replace("\x03", "</mark>")


def _plain(head: str) -> str:
    """The start of a message as safe HTML, cut at `PLAIN_SNIPPET_CHARS`."""
    if len(head) <= PLAIN_SNIPPET_CHARS:
        return _escaped(head)
    return _escaped(head[:PLAIN_SNIPPET_CHARS].rstrip()) + "…"
