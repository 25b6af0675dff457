"""Keyword search over a user's messages: Postgres full-text search, ranked, with snippets.

Messages carry a generated `search_vector` (`to_tsvector('english', content)`, GIN
indexed); the query is parsed by `websearch_to_tsquery`, so users may write
`"exact phrase"`, `or` and `-excluded`. Ranking is `ts_rank_cd`; snippets come from
`ts_headline` on the page of hits only. Snippets are HTML-escaped (message text may hold
markup, even steered into an answer by prompt injection), then the matches wrapped in
`<mark>`: a client may render them as HTML.
"""

from __future__ import annotations

import html

from chatbus_contracts.conversations import SearchHit, SearchMessages
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

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


async def search_messages(engine: AsyncEngine, search: SearchMessages) -> list[SearchHit]:
    """The user's best-matching messages in live conversations."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            _SEARCH,
            {
                "query": search.query,
                "user_id": search.user_id,
                "conversation_id": search.conversation_id,
                "limit": search.limit,
            },
        )
        return [
            SearchHit(
                message_id=row.id,
                conversation_id=row.conversation_id,
                conversation_title=row.title,
                role=row.role,
                created_at=row.created_at,
                rank=row.rank,
                snippet=_marked(row.snippet),
            )
            for row in rows
        ]


def _marked(snippet: str) -> str:
    """The snippet as safe HTML: escaped text, matches in `<mark>`."""
    escaped = html.escape(snippet, quote=False)
    return escaped.replace("\x02", "<mark>").replace("\x03", "</mark>")
