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
"""

from . import chunks, commands, common, errors, events, queries, streams, subjects, ws

__all__ = [
    "chunks",
    "commands",
    "common",
    "errors",
    "events",
    "queries",
    "streams",
    "subjects",
    "ws",
]
