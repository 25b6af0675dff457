"""Conversation management over core NATS request/reply, answered by the conversation service.

Commands change a conversation and publish the matching `conversation.*` event; queries
only read. As with every query, `user_id` comes from the caller's verified token.
A command or query that cannot be done answers `Refused` instead of its usual reply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from .common import TITLE_MAX_CHARS, ChatSettings, Model, Role, Text
from .queries import ConversationView


class Refused(Model):
    """Why a command or query was not done; `field` names the offending input, if any."""

    code: Literal["conversation_not_found", "message_not_found", "invalid_request"]
    message: str
    field: str | None = None


class CreateConversation(Model):
    """Start an empty conversation; unset settings come from the user's preferences."""

    user_id: str
    title: Text | None = Field(default=None, max_length=TITLE_MAX_CHARS)
    settings: ChatSettings = ChatSettings()


class ConversationChanges(Model):
    """What a `PATCH` changes: only the fields it names (None clears a setting)."""

    title: Text | None = Field(default=None, min_length=1, max_length=TITLE_MAX_CHARS)
    system_prompt: Text | None = Field(default=None, max_length=32_000)
    model: Text | None = Field(default=None, max_length=200)
    provider: Text | None = Field(default=None, max_length=100)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    memory: bool | None = None
    active_message_id: UUID | None = Field(
        default=None, description="Switch the active branch to the one ending at this message."
    )


class UpdateConversation(Model):
    """Apply `changes` (only its set fields).

    `generated_title` is how inference proposes an automatic title: it is applied only
    while the title still comes from the first message, never over a user's rename.
    """

    user_id: str
    conversation_id: UUID
    changes: ConversationChanges = ConversationChanges()
    changed_fields: frozenset[str] = frozenset()
    generated_title: Text | None = Field(default=None, max_length=TITLE_MAX_CHARS)


class DeleteConversation(Model):
    """Soft-delete a conversation."""

    user_id: str
    conversation_id: UUID


class ConversationChanged(Model):
    """Reply to create and update: the conversation as it now is."""

    conversation: ConversationView


class ConversationRemoved(Model):
    """Reply to delete."""

    conversation_id: UUID
    deleted_at: datetime


class SearchMessages(Model):
    """Keyword search (Postgres full-text) over the caller's messages, best match first."""

    user_id: str
    query: Text = Field(min_length=1, max_length=500)
    limit: int = Field(default=20, ge=1, le=100)
    conversation_id: UUID | None = None
    include_message_ids: list[UUID] = Field(
        default_factory=list,
        max_length=200,
        description="Also answer these (semantic) matches, where they are the caller's.",
    )


class SearchHit(Model):
    """One matching message, with the matched words marked `<mark>…</mark>` in `snippet`."""

    conversation_id: UUID
    conversation_title: str
    message_id: UUID
    role: Role
    snippet: str
    rank: float
    created_at: datetime
    similarity: float | None = Field(
        default=None, description="Cosine similarity to the query, for a semantic match."
    )
    matched_by: list[Literal["keyword", "semantic"]] = Field(default_factory=list)


class SearchResults(Model):
    """Reply to `SearchMessages`."""

    hits: list[SearchHit]
    included: list[SearchHit] = Field(
        default_factory=list,
        description="The caller's messages among `include_message_ids` (rank 0, plain snippet).",
    )
    semantic: bool = Field(
        default=False, description="Whether semantic matches took part (hybrid search)."
    )


class Preferences(Model):
    """A user's defaults, applied to each conversation they start."""

    default_model: Text | None = Field(default=None, max_length=200)
    default_system_prompt: Text | None = Field(default=None, max_length=32_000)
    default_memory: bool | None = Field(
        default=None, description="Retrieval memory for conversations started afterwards."
    )

    def as_settings(self) -> ChatSettings:
        """The settings of a conversation the user starts now."""
        return ChatSettings(
            model=self.default_model,
            system_prompt=self.default_system_prompt,
            memory=self.default_memory,
        )


class GetPreferences(Model):
    """The caller's preferences (all None until set)."""

    user_id: str


class SetPreferences(Model):
    """Replace the caller's preferences."""

    user_id: str
    preferences: Preferences
