"""What a turn builds on: the branch of history, its settings, and where the new messages hang.

    chat.send                       history = active branch (or the one ending at
                                    parent_message_id, or up to the edited message)
                                    user message -> child of history[-1]
                                    answer       -> child of the user message
    chat.regenerate                 history = branch ending at the user message
                                    (an assistant message_id: at its question)
                                    answer       -> child of that user message

Settings: a turn's own overrides, then the conversation's settings (which already
hold the user's preferences), then the service default. A new conversation's settings
are the user's preferences, from the `user_preferences` bucket (preferences.py) when
it has them, else from the conversation service, which fills the bucket.

With `memory` on, a stored conversation's turn also gets the user's most relevant
messages from other conversations as context (memory.py); stateless turns never do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from uuid import UUID

from chatbus_contracts import subjects
from chatbus_contracts.commands import GenerateReply, PriorMessage
from chatbus_contracts.common import ChatSettings
from chatbus_contracts.errors import ErrorCode
from chatbus_contracts.queries import (
    GetHistory,
    GetMessage,
    HistoryReply,
    MessageFound,
    MessageView,
)
from chatbus_runtime import rpc
from faststream.nats import NatsBroker

from .memory import Memory, Recollection
from .preferences import PreferencesReader
from .providers.base import PromptMessage, ProviderError


@dataclass(frozen=True)
class TurnPlan:
    """Everything about a turn that comes from the stored conversation."""

    history: list[PromptMessage]
    new_content: str | None
    conversation_settings: ChatSettings
    settings: ChatSettings
    user_parent_id: UUID | None
    assistant_parent_id: UUID
    wants_title: bool = False
    after_content: tuple[PromptMessage, ...] = ()
    """A stateless turn's tool calls and results after the new user message."""
    recollection: Recollection | None = None
    """Retrieval memory's context, when the turn has memory on and anything was relevant."""

    @property
    def context_message_ids(self) -> list[UUID]:
        """The stored messages retrieval memory put into the prompt."""
        return list(self.recollection.message_ids) if self.recollection else []

    @property
    def prompt(self) -> list[PromptMessage]:
        """System prompt, memory's context, then the branch (ending with the question).

        A stateless turn that answers tool results ends with them, after the question.
        """
        messages: list[PromptMessage] = []
        if self.settings.system_prompt:
            messages.append(PromptMessage("system", self.settings.system_prompt))
        if self.recollection is not None:
            messages.append(self.recollection.message)
        messages.extend(m for m in self.history if m.role != "system")
        if self.new_content is not None:
            messages.append(PromptMessage("user", self.new_content))
        messages.extend(self.after_content)
        return messages


def history_query(request: GenerateReply) -> GetHistory:
    """The history a request needs, by how it anchors in the message tree."""
    leaf_id = request.parent_message_id or request.edit_message_id
    if request.regenerate:
        leaf_id = request.user_message_id
    return GetHistory(
        user_id=request.user_id,
        conversation_id=request.conversation_id,
        new_conversation=request.new_conversation,
        leaf_id=leaf_id,
        exclude_request_id=None if request.regenerate else request.request_id,
    )


def effective_settings(request: GenerateReply, conversation: ChatSettings) -> ChatSettings:
    """The turn's overrides over the conversation's settings."""
    return ChatSettings(
        system_prompt=request.system or conversation.system_prompt,
        model=request.model or conversation.model,
        # A turn that names its model names its provider too (or lets the catalogue pick).
        provider=request.provider if request.model else request.provider or conversation.provider,
        temperature=request.temperature
        if request.temperature is not None
        else conversation.temperature,
        max_tokens=request.max_tokens or conversation.max_tokens,
        memory=request.memory if request.memory is not None else conversation.memory,
    )


async def plan_turn(
    broker: NatsBroker,
    request: GenerateReply,
    timeout_seconds: float,
    *,
    memory: Memory | None,
    preferences: PreferencesReader,
) -> TurnPlan:
    """The branch from the conversation service, and memory's context if the turn wants it.

    A new conversation has no branch: its settings are the user's preferences, read from
    their bucket when it has them. `ProviderError` if the conversation or an anchor
    message does not exist.
    """
    reply = await _history(broker, request, timeout_seconds, preferences)
    plan = _plan_from_history(request, reply)
    if memory is None or not plan.settings.memory or request.prior_messages is not None:
        return plan
    question = plan.new_content or (plan.history[-1].content if plan.history else "")
    if not question:
        return plan
    recollection = await memory.recall(request.user_id, request.conversation_id, question)
    return replace(plan, recollection=recollection)


async def stored_answer(
    broker: NatsBroker, request: GenerateReply, timeout_seconds: float
) -> MessageView | None:
    """A retried turn's answer, if an earlier try stored it but died before ending the turn.

    Raises `TimeoutError` (a transient failure: the request is delivered again later)
    when it is not found while the conversation service is behind the published events.
    """
    query = GetMessage(user_id=request.user_id, message_id=request.assistant_message_id)
    found = await rpc.ask(
        broker,
        subjects.CONVERSATION_QUERY_MESSAGE,
        query,
        MessageFound,
        timeout_seconds=timeout_seconds,
    )
    if found.message is None and not found.caught_up:
        raise TimeoutError("the conversation service is behind the events")
    return found.message


async def _history(
    broker: NatsBroker,
    request: GenerateReply,
    timeout_seconds: float,
    preferences: PreferencesReader,
) -> HistoryReply:
    if request.new_conversation:
        known = await preferences.get(request.user_id)
        if known is not None:
            return HistoryReply.new_conversation(known.as_settings())
    return await rpc.ask(
        broker,
        subjects.CONVERSATION_QUERY_HISTORY,
        history_query(request),
        HistoryReply,
        timeout_seconds=timeout_seconds,
    )


def _plan_from_history(request: GenerateReply, reply: HistoryReply) -> TurnPlan:
    if not reply.found:
        if request.regenerate or request.parent_message_id or request.edit_message_id:
            raise ProviderError(ErrorCode.MESSAGE_NOT_FOUND, "no such message in this conversation")
        raise ProviderError(ErrorCode.CONVERSATION_NOT_FOUND, "conversation not found")
    settings = effective_settings(request, reply.settings)
    history = list(reply.messages)
    _check_anchor(request, history)
    if request.edit_message_id:
        history.pop()  # the edited message: its replacement takes its place
    if not request.regenerate:
        prompt = _prompt_of(history)
        if request.prior_messages is not None:  # stateless: the caller sent the prompt
            prompt = [prompt_message(m) for m in request.prior_messages]
        after = request.tool_use.after_content if request.tool_use else []
        return TurnPlan(
            history=prompt,
            new_content=request.content,
            conversation_settings=reply.settings,
            settings=settings,
            user_parent_id=history[-1].id if history else None,
            assistant_parent_id=request.user_message_id,
            wants_title=reply.untitled and not history,
            after_content=tuple(prompt_message(m) for m in after),
        )
    if history and history[-1].role == "assistant":
        history.pop()
    if not history or history[-1].role != "user":
        raise ProviderError(ErrorCode.INVALID_REQUEST, "only a user message can be answered again")
    return TurnPlan(
        history=_prompt_of(history),
        new_content=None,
        conversation_settings=reply.settings,
        settings=settings,
        user_parent_id=history[-1].parent_id,
        assistant_parent_id=history[-1].id,
    )


def _check_anchor(request: GenerateReply, history: list[MessageView]) -> None:
    """An edit replaces a user message; a branch continues after an answer."""
    if request.edit_message_id and history[-1].role != "user":
        raise ProviderError(ErrorCode.INVALID_REQUEST, "edit_message_id must name a user message")
    if request.parent_message_id and history[-1].role != "assistant":
        raise ProviderError(
            ErrorCode.INVALID_REQUEST, "parent_message_id must name an assistant message"
        )


def prompt_message(message: PriorMessage) -> PromptMessage:
    """A message of a stateless prompt, with its tool calls or tool call id."""
    return PromptMessage(
        message.role,
        message.content,
        tool_calls=tuple(message.tool_calls or ()),
        tool_call_id=message.tool_call_id,
    )


def _prompt_of(history: list[MessageView]) -> list[PromptMessage]:
    return [PromptMessage(m.role, m.content) for m in history]
