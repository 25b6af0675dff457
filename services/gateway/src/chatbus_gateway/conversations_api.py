"""REST routes for conversations and preferences (message search: search_api.py).

Every route answers for the caller only: a conversation id of another user is a 404,
exactly like an id that never existed. The conversation service does the work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated
from uuid import UUID

from chatbus_contracts.common import TITLE_MAX_CHARS, ChatSettings, Model
from chatbus_contracts.conversations import (
    ConversationChanges,
    ConversationRemoved,
    Preferences,
)
from chatbus_contracts.queries import ConversationDetail, ConversationPage, ConversationView
from fastapi import APIRouter, Query, status
from nats.errors import Error as NatsError
from pydantic import Field

from .conversations import RefusedError
from .deps import CurrentUser, State
from .errors import ApiError, unavailable

router = APIRouter(prefix="/v1", tags=["conversations"])


class NewConversation(ChatSettings):
    """Body of `POST /v1/conversations`; every field is optional."""

    title: str | None = Field(default=None, min_length=1, max_length=TITLE_MAX_CHARS)


class Deleted(Model):
    """Body of a successful `DELETE`."""

    id: UUID
    deleted: bool = True


@contextmanager
def _answers() -> Iterator[None]:
    """Map the conversation service's refusals and silences to HTTP errors."""
    try:
        yield
    except RefusedError as error:
        refused = error.refused
        if refused.code == "invalid_request":
            raise ApiError(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                refused.code,
                refused.message,
                fields=[{"field": refused.field or "body", "message": refused.message}],
            ) from error
        raise ApiError(status.HTTP_404_NOT_FOUND, refused.code, refused.message) from error
    except (NatsError, TimeoutError) as error:
        raise unavailable() from error


def _not_found() -> ApiError:
    return ApiError(status.HTTP_404_NOT_FOUND, "conversation_not_found", "conversation not found")


@router.get("/conversations", response_model=ConversationPage)
async def list_conversations(
    user_id: CurrentUser,
    state: State,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> ConversationPage:
    """The caller's conversations, newest first; pass `next_cursor` back for the next page."""
    with _answers():
        return await state.conversations.page(user_id, limit, cursor)


@router.post("/conversations", response_model=ConversationView, status_code=status.HTTP_201_CREATED)
async def create_conversation(
    body: NewConversation, user_id: CurrentUser, state: State
) -> ConversationView:
    """Start an empty conversation; unset settings come from the caller's preferences."""
    settings = ChatSettings.model_validate(body.model_dump(exclude={"title"}))
    with _answers():
        return await state.conversations.create(user_id, body.title, settings)


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail)
async def get_conversation(
    conversation_id: UUID, user_id: CurrentUser, state: State
) -> ConversationDetail:
    """One of the caller's conversations with every message (a tree by `parent_id`)."""
    with _answers():
        found = await state.conversations.get(user_id, conversation_id)
    if found is None:
        raise _not_found()
    return found


@router.patch("/conversations/{conversation_id}", response_model=ConversationView)
async def update_conversation(
    conversation_id: UUID, body: ConversationChanges, user_id: CurrentUser, state: State
) -> ConversationView:
    """Rename, change settings (null clears one) or switch the active branch."""
    if "title" in body.model_fields_set and body.title is None:
        raise ApiError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "invalid_request",
            "title cannot be null",
            fields=[{"field": "title", "message": "title cannot be null"}],
        )
    with _answers():
        return await state.conversations.update(user_id, conversation_id, body)


@router.delete("/conversations/{conversation_id}", response_model=Deleted)
async def delete_conversation(conversation_id: UUID, user_id: CurrentUser, state: State) -> Deleted:
    """Delete (soft): gone from lists, search and the embeddings index."""
    with _answers():
        removed: ConversationRemoved = await state.conversations.delete(user_id, conversation_id)
    return Deleted(id=removed.conversation_id)


@router.get("/preferences", response_model=Preferences)
async def get_preferences(user_id: CurrentUser, state: State) -> Preferences:
    """The caller's defaults for new conversations."""
    with _answers():
        return await state.conversations.preferences(user_id)


@router.put("/preferences", response_model=Preferences)
async def set_preferences(body: Preferences, user_id: CurrentUser, state: State) -> Preferences:
    """Replace the caller's defaults (they apply to conversations started afterwards)."""
    with _answers():
        return await state.conversations.set_preferences(user_id, body)
