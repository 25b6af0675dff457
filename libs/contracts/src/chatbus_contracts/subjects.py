"""Every NATS subject chatbus uses, named once.

Subjects that end in a variable part are built by the functions below so that
producer and consumer can never disagree on the spelling.
"""

from __future__ import annotations

from uuid import UUID

# JetStream work queue: gateway -> inference (one durable pull consumer shared by replicas).
CHAT_REQUESTS = "chat.requests"

# Reply chunks: inference -> the gateway that accepted the request. Published with core
# NATS into the CHAT_CHUNKS stream, so live subscribers get them at core speed and the
# stream keeps them for replay.
CHAT_CHUNKS_PREFIX = "chat.chunks"
CHAT_CHUNKS_ALL = f"{CHAT_CHUNKS_PREFIX}.>"

# Core: gateway -> the inference replica that owns the request.
CHAT_CANCEL_PREFIX = "chat.cancel"
CHAT_CANCEL_ALL = f"{CHAT_CANCEL_PREFIX}.*"

# Domain events, JetStream stream EVENTS.
MESSAGE_CREATED = "message.created"
MESSAGE_FAILED = "message.failed"
CONVERSATION_CREATED = "conversation.created"
CONVERSATION_UPDATED = "conversation.updated"
CONVERSATION_DELETED = "conversation.deleted"
USAGE_RECORDED = "usage.recorded"
USAGE_BUDGET_EXCEEDED = "usage.budget_exceeded"

# Core subscription of a gateway that pushes conversation events to open sockets.
CONVERSATION_EVENTS_ALL = "conversation.*"

EVENT_SUBJECTS: tuple[str, ...] = (
    MESSAGE_CREATED,
    MESSAGE_FAILED,
    CONVERSATION_CREATED,
    CONVERSATION_UPDATED,
    CONVERSATION_DELETED,
    USAGE_RECORDED,
    USAGE_BUDGET_EXCEEDED,
)

# Core request/reply, answered by a queue group of the owning service.
CONVERSATION_QUERY_LIST = "conversation.query.list"
CONVERSATION_QUERY_GET = "conversation.query.get"
CONVERSATION_QUERY_HISTORY = "conversation.query.history"
CONVERSATION_QUERY_SEARCH = "conversation.query.search"
CONVERSATION_QUERY_MESSAGE = "conversation.query.message"
CONVERSATION_COMMAND_CREATE = "conversation.command.create"
CONVERSATION_COMMAND_UPDATE = "conversation.command.update"
CONVERSATION_COMMAND_DELETE = "conversation.command.delete"
PREFERENCES_QUERY_GET = "conversation.query.preferences"
PREFERENCES_COMMAND_SET = "conversation.command.preferences"

MODELS_QUERY_LIST = "inference.query.models"

USAGE_QUERY_SUMMARY = "usage.query.summary"

EMBEDDINGS_EMBED = "embeddings.embed"
EMBEDDINGS_SIMILAR = "embeddings.query.similar"

# Queue groups: one per service, so replicas share request/reply work.
CONVERSATION_QUEUE = "conversation"
INFERENCE_QUEUE = "inference"
USAGE_QUEUE = "usage"
EMBEDDINGS_QUEUE = "embeddings"


def chat_chunks_subject(gateway_id: str, request_id: UUID) -> str:
    """The subject a request's chunks are published on: `chat.chunks.<gateway>.<request>`."""
    return f"{CHAT_CHUNKS_PREFIX}.{gateway_id}.{request_id}"


def chat_chunks_gateway_wildcard(gateway_id: str) -> str:
    """The subscription of one gateway process: every chunk meant for it."""
    return f"{CHAT_CHUNKS_PREFIX}.{gateway_id}.>"


def chat_chunks_request_wildcard(request_id: UUID) -> str:
    """Every chunk of one request, whichever gateway accepted it (used for replay)."""
    return f"{CHAT_CHUNKS_PREFIX}.*.{request_id}"


def chat_cancel_subject(request_id: UUID) -> str:
    """The subject that stops one generation."""
    return f"{CHAT_CANCEL_PREFIX}.{request_id}"
