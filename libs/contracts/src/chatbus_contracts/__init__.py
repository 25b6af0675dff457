"""chatbus contracts: the models and names every chatbus process agrees on.

No I/O lives here. Modules:

- `subjects`: every NATS subject, and builders for the parameterised ones.
- `streams`: JetStream streams and durable consumers (plain data).
- `common`: shared building blocks (`TokenUsage`, `derived_id`, ...).
- `commands`: `GenerateReply`, `StopGeneration`.
- `chunks`: reply chunks from inference to the gateway.
- `events`: `MessageCreated`, `ConversationCreated`, `UsageRecorded`, ...
- `queries`: request/reply queries and their replies.
- `ws`: WebSocket protocol v1 frames.
- `errors`: stable error codes and close codes.
- `conversations`: conversation commands, search, preferences.
- `keys`: API keys (`cb-…`) and their stored records.
- `limits`, `budgets`: keys and values of the rate-limit and budget buckets.
- `usage`: usage summary queries.
"""

from . import (
    budgets,
    chunks,
    commands,
    common,
    conversations,
    errors,
    events,
    keys,
    limits,
    queries,
    streams,
    subjects,
    usage,
    ws,
)

__all__ = [
    "budgets",
    "chunks",
    "commands",
    "common",
    "conversations",
    "errors",
    "events",
    "keys",
    "limits",
    "queries",
    "streams",
    "subjects",
    "usage",
    "ws",
]
