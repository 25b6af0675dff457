"""JetStream streams and durable consumers, declared in one place.

The values are plain data so this package stays free of I/O; `chatbus_runtime`
turns them into nats-py configs and declares them at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import subjects
from .deadletters import DEAD_LETTERS_ALL

Retention = Literal["limits", "workqueue", "interest"]
Storage = Literal["file", "memory"]

MINUTE = 60.0
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@dataclass(frozen=True)
class StreamSpec:
    """What a stream holds and for how long."""

    name: str
    subjects: tuple[str, ...]
    retention: Retention
    max_age_seconds: float
    storage: Storage = "file"
    duplicate_window_seconds: float = 2 * MINUTE
    description: str = ""
    # Messages can be read with direct gets: answered without the JetStream API's JSON
    # envelope and base64 (the last chunk of a request is read before every turn).
    allow_direct: bool = False


CHAT_REQUESTS = StreamSpec(
    name="CHAT_REQUESTS",
    subjects=(subjects.CHAT_REQUESTS,),
    retention="workqueue",
    max_age_seconds=1 * DAY,
    description="Accepted chat turns waiting for an inference replica (work queue).",
)

CHAT_CHUNKS = StreamSpec(
    name="CHAT_CHUNKS",
    subjects=(subjects.CHAT_CHUNKS_ALL,),
    retention="limits",
    max_age_seconds=15 * MINUTE,
    # Chunks are published with core NATS; dedupe is not used for them.
    duplicate_window_seconds=0,
    description="Reply chunks kept for a few minutes so a reconnecting client can resume.",
    allow_direct=True,
)

EVENTS = StreamSpec(
    name="EVENTS",
    subjects=subjects.EVENT_SUBJECTS,
    retention="limits",
    max_age_seconds=7 * DAY,
    description="Domain events (message.created, usage.recorded, ...) for services and others.",
)

# Messages a consumer gave up on (`chatbus_contracts.deadletters`), kept for operators to
# inspect and replay (`chatbus dlq`); one entry per original and consumer.
DEAD_LETTERS = StreamSpec(
    name="DEAD_LETTERS",
    subjects=(DEAD_LETTERS_ALL,),
    retention="limits",
    max_age_seconds=30 * DAY,
    description="Messages a durable consumer gave up on, with the reason; see `chatbus dlq`.",
)

ALL_STREAMS: tuple[StreamSpec, ...] = (CHAT_REQUESTS, CHAT_CHUNKS, EVENTS, DEAD_LETTERS)


@dataclass(frozen=True)
class BucketSpec:
    """A JetStream key-value bucket (file storage, one value per key)."""

    name: str
    ttl_seconds: float  # 0: values never expire
    description: str = ""


# request id -> `TurnRecord`: who owns a turn (resume) and that it was accepted, beyond the
# CHAT_REQUESTS dedupe window (idempotent resends).
CHAT_TURNS = BucketSpec(
    name="chat_turns",
    ttl_seconds=7 * DAY,
    description="Accepted turns by request id: owner and message ids.",
)

API_KEYS = BucketSpec(
    name="api_keys",
    ttl_seconds=0,  # keys live until revoked
    description="API keys by key id: owner, role, name and the SHA-256 of the secret.",
)

RATE_LIMITS = BucketSpec(
    name="rate_limits",
    ttl_seconds=2 * DAY,
    description="Per-user request windows and tokens per day, shared by gateway replicas.",
)

BUDGETS = BucketSpec(
    name="budgets",
    ttl_seconds=0,  # limits stay; a month's state is small and kept for reference
    description="Per-user monthly budgets, and each month's spend and reservations.",
)

# user key -> `Preferences`, as the conversation service last stored them (it writes each
# change in its transaction, and a missing key when a new conversation asked it), so the
# first turn of a new conversation reads them without a round trip through that service.
# Expiry bounds how long a value can outlive a change whose commit failed.
USER_PREFERENCES = BucketSpec(
    name="user_preferences",
    ttl_seconds=DAY,
    description="Each user's preferences, for new conversations; a missing key: ask conversation.",
)

ALL_BUCKETS: tuple[BucketSpec, ...] = (
    CHAT_TURNS,
    API_KEYS,
    RATE_LIMITS,
    BUDGETS,
    USER_PREFERENCES,
)


# Deliveries of one message before it is dead-lettered. With the redelivery backoff
# (0.5 s doubling to 30 s, `chatbus_runtime.redelivery`) a failing message is retried for
# about two minutes; a message whose process dies on it, for ten ack waits.
DEFAULT_MAX_DELIVER = 10


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable consumer: which stream, which subjects, how long an ack may take.

    After `max_deliver` deliveries (≤ 0: no limit) a message moves to DEAD_LETTERS.
    """

    durable: str
    stream: StreamSpec
    filter_subjects: tuple[str, ...]
    ack_wait_seconds: float = 30.0
    max_deliver: int = DEFAULT_MAX_DELIVER


INFERENCE_CONSUMER = ConsumerSpec(
    durable="inference",
    stream=CHAT_REQUESTS,
    filter_subjects=(subjects.CHAT_REQUESTS,),
    # Kept short so a dead replica's request moves on within seconds; live replicas
    # extend it with in_progress() every third of it for the whole turn.
    ack_wait_seconds=10.0,
)

CONVERSATION_CONSUMER = ConsumerSpec(
    durable="conversation",
    stream=EVENTS,
    filter_subjects=(
        subjects.MESSAGE_CREATED,
        subjects.CONVERSATION_CREATED,
        subjects.CONVERSATION_UPDATED,
        subjects.CONVERSATION_DELETED,
    ),
)

USAGE_CONSUMER = ConsumerSpec(
    durable="usage",
    stream=EVENTS,
    filter_subjects=(subjects.USAGE_RECORDED,),
)

EMBEDDINGS_CONSUMER = ConsumerSpec(
    durable="embeddings",
    stream=EVENTS,
    filter_subjects=(subjects.MESSAGE_CREATED,),
    ack_wait_seconds=120.0,
)

# A separate consumer, so deletions never wait behind a backlog of messages to embed.
EMBEDDINGS_DELETIONS_CONSUMER = ConsumerSpec(
    durable="embeddings-deletions",
    stream=EVENTS,
    filter_subjects=(subjects.CONVERSATION_DELETED,),
)
