"""Requests to the embeddings service: embed texts, and find a user's similar messages.

Vectors travel as base64 of little-endian float32 (what OpenAI's `encoding_format=base64`
returns), a third of the size of JSON floats, so a part stays far below NATS's payload
limit. The gateway splits a large `POST /v1/embeddings` into parts of `PART_MAX_ITEMS`.
"""

from __future__ import annotations

import base64
import struct
from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from .common import Model, Role, Text

MAX_INPUT_ITEMS = 2048  # OpenAI's limit per request
# A part and its answer must each fit NATS's default 1 MB: 16 vectors of 3,072 float32
# are 262 KB of base64; 200,000 characters are at most 800 KB of UTF-8.
PART_MAX_ITEMS = 16
PART_MAX_CHARS = 200_000
# Longer texts are cut at the gateway (every model's window is far shorter) and reported.
MAX_TEXT_CHARS = 100_000


def pack_vector(vector: list[float]) -> str:
    """A vector as base64 of little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def unpack_vector(packed: str) -> list[float]:
    """The inverse of `pack_vector`."""
    raw = base64.b64decode(packed)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


class EmbedTexts(Model):
    """Embed these texts with `model` for `user_id`, billed as one call."""

    user_id: str
    request_id: UUID = Field(description="Derives the usage event id, so a retry bills once.")
    model: str
    texts: list[Text] = Field(min_length=1, max_length=PART_MAX_ITEMS)
    dimensions: int | None = Field(default=None, ge=1, le=4096)


class EmbeddedTexts(Model):
    """Reply to `EmbedTexts`: one packed vector per text, in order."""

    model: str
    dimensions: int
    vectors: list[str]
    prompt_tokens: int = Field(ge=0)
    truncated: list[int] = Field(
        default_factory=list, description="Indexes of texts cut to the model's window."
    )


class EmbedRefused(Model):
    """Why texts were not embedded."""

    code: Literal["unknown_model", "invalid_request", "provider_error"]
    message: str


class FindSimilar(Model):
    """The user's messages most similar to `query` (cosine), above `min_similarity`."""

    user_id: str
    query: Text = Field(min_length=1, max_length=8_000)
    limit: int = Field(default=20, ge=1, le=100)
    min_similarity: float = Field(default=0.3, ge=-1, le=1)
    conversation_id: UUID | None = Field(default=None, description="Only this conversation.")
    exclude_conversation_id: UUID | None = Field(
        default=None, description="Not this conversation (memory: the one being answered)."
    )


class SimilarMessage(Model):
    """One stored message and how similar it is to the query."""

    message_id: UUID
    conversation_id: UUID
    role: Role
    content: str
    similarity: float
    created_at: datetime


class SimilarMessages(Model):
    """Reply to `FindSimilar`, most similar first."""

    model: str
    hits: list[SimilarMessage]
