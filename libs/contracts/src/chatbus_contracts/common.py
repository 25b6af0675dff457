"""Building blocks shared by events, commands and frames."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID, uuid5

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    computed_field,
)

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "stopped", "error"]

# Namespace for ids derived from other ids (see `derived_id`).
_CHATBUS_NAMESPACE = UUID("6f1c2b0e-3a55-4c1e-9a43-0d1f3c9b7e21")


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC (every timestamp in chatbus is)."""
    return datetime.now(UTC)


def user_key(user_id: str) -> str:
    """A user id as a key-value key token (ids may hold characters keys may not)."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:32]


def derived_id(*parts: object) -> UUID:
    """A UUID that is always the same for the same parts.

    Events of one chat turn get ids derived from the request id, so a replica that
    retries the turn publishes the same `event_id` and JetStream deduplicates it.
    """
    return uuid5(_CHATBUS_NAMESPACE, ":".join(str(part) for part in parts))


class Model(BaseModel):
    """Base of every contract model: unknown fields are refused, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenUsage(Model):
    """Tokens of one provider call, as the provider reported them."""

    # `total_tokens` is computed and serialised; it is ignored when read back.
    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cached_tokens: int = Field(default=0, ge=0, description="Prompt tokens read from cache.")
    cache_write_tokens: int = Field(default=0, ge=0, description="Prompt tokens written to cache.")
    estimated: bool = Field(
        default=False, description="True when chatbus estimated the counts (e.g. a stopped stream)."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


def format_usd(amount: Decimal | None) -> str | None:
    """A cost as the decimal string the protocol uses (no exponent, no float rounding)."""
    if amount is None:
        return None
    return format(amount.normalize(), "f") if amount != 0 else "0"


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("text may not contain NUL (\\u0000) characters")
    return text


# Text that Postgres can store: no NUL characters (refused at the edge, never a poison event).
Text = Annotated[str, AfterValidator(_no_nul)]


class ChatSettings(Model):
    """Per-conversation model settings; a `chat.send` may override any of them for one turn.

    None means "not set here": a turn then takes the user's preference, then the
    service default.
    """

    system_prompt: Text | None = Field(default=None, max_length=32_000)
    model: Text | None = Field(default=None, max_length=200)
    provider: Text | None = Field(default=None, max_length=100)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    memory: bool | None = Field(
        default=None,
        description=(
            "Retrieval memory: add the most relevant earlier messages of the user's other "
            "conversations to the prompt, marked as context."
        ),
    )


TITLE_MAX_CHARS = 200


def first_words(content: str, max_chars: int = 60) -> str:
    """A plain conversation title: the first words of `content` on one line."""
    line = " ".join(content.split()) or "New conversation"
    max_chars = min(max_chars, TITLE_MAX_CHARS)
    return line if len(line) <= max_chars else line[: max_chars - 1].rstrip() + "…"


def _usd_text(amount: Decimal) -> str:
    return format_usd(amount) or "0"


# A USD amount that reads as a plain decimal string in JSON ("0.0000072", never "7.2E-6").
Usd = Annotated[Decimal, PlainSerializer(_usd_text, return_type=str, when_used="json")]
