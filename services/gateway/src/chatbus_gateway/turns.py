"""Accepting a chat turn: validate, make it durable in JetStream, then say `chat.accepted`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

from chatbus_contracts import subjects
from chatbus_contracts.commands import GenerateReply, PriorMessage, ToolUse, TurnRecord
from chatbus_contracts.common import derived_id
from chatbus_contracts.errors import ErrorCode
from chatbus_contracts.streams import CHAT_REQUESTS
from chatbus_contracts.ws import ChatAccepted, ChatRegenerate, ChatSend
from chatbus_runtime.bus import publish_to_stream
from chatbus_runtime.kvcas import ContentionError
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

from .auth import Identity
from .conversations import ConversationClient
from .limits import RateLimited, RateLimiter
from .records import TurnRecords
from .replies import ChunkQueue, ReplyRouter

logger = logging.getLogger(__name__)


class TurnRefused(Exception):
    """A `chat.send` that cannot be accepted; becomes a `chat.error` frame."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retryable: bool = False,
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after_ms = retry_after_ms


@dataclass(frozen=True)
class AcceptedTurn:
    """A durable turn: the frame to send, where its chunks arrive, and whether it is a resend.

    A resend (JetStream reported a duplicate, or the turn has a record in `chat_turns`)
    started no new generation; its chunks so far are in the CHAT_CHUNKS stream, not in
    `queue`.
    """

    frame: ChatAccepted
    queue: ChunkQueue
    duplicate: bool


class TurnAcceptor:
    """Turns a `chat.send` into a durable `GenerateReply` on CHAT_REQUESTS.

    Every id of the turn is derived from (user, client message id): a resend of the
    same `chat.send` gets the same ids, and JetStream's `Nats-Msg-Id` dedupe keeps
    it from starting a second generation; after the dedupe window, the turn's record
    in `chat_turns` does.
    """

    def __init__(
        self,
        broker: NatsBroker,
        router: ReplyRouter,
        conversations: ConversationClient,
        records: TurnRecords,
        limiter: RateLimiter,
        *,
        gateway_id: str,
        max_content_bytes: int,
        publish_timeout_seconds: float,
    ) -> None:
        self._broker = broker
        self._router = router
        self._conversations = conversations
        self._records = records
        self._limiter = limiter
        self._gateway_id = gateway_id
        self._max_content_bytes = max_content_bytes
        self._publish_timeout = publish_timeout_seconds

    async def accept(
        self,
        identity: Identity,
        send: ChatSend | ChatRegenerate,
        *,
        prior_messages: list[PriorMessage] | None = None,
        tool_use: ToolUse | None = None,
    ) -> AcceptedTurn:
        """Publish the turn and wait for the PubAck; the queue then receives its chunks.

        `prior_messages` makes a stateless turn (OpenAI-compatible API): its prompt is
        them plus `content`, not the stored history. `tool_use` adds its tools and tool
        messages.
        """
        user_id = identity.user_id
        content = send.content if isinstance(send, ChatSend) else ""
        if len(content.encode()) > self._max_content_bytes:
            raise TurnRefused(
                ErrorCode.CONTENT_TOO_LARGE,
                f"content is larger than {self._max_content_bytes} bytes",
            )
        request_id = derived_id("request", user_id, send.id)
        if send.conversation_id is not None:
            try:
                found = await self._conversations.get(
                    user_id, send.conversation_id, include_messages=False
                )
            except (NatsError, TimeoutError) as error:
                raise TurnRefused(
                    ErrorCode.UNAVAILABLE,
                    "conversations are unavailable; send it again",
                    retryable=True,
                ) from error
            if found is None:
                raise TurnRefused(ErrorCode.CONVERSATION_NOT_FOUND, "conversation not found")
        command = self._command(identity, request_id, send)
        if prior_messages is not None:
            command = command.model_copy(
                update={"prior_messages": prior_messages, "tool_use": tool_use}
            )
        # Listen before publishing, so not even the first chunk can be missed.
        queue = self._router.open(request_id)
        if await self._records.get(request_id) is not None:
            return AcceptedTurn(_accepted_frame(command), queue, duplicate=True)
        try:
            await self._admit(identity)
        except TurnRefused:
            self._router.close(request_id, queue)
            raise
        try:
            ack = await publish_to_stream(
                self._broker,
                subjects.CHAT_REQUESTS,
                command,
                stream=CHAT_REQUESTS.name,
                headers={"Nats-Msg-Id": str(request_id)},
                ack_timeout_seconds=self._publish_timeout,
            )
        except (NatsError, TimeoutError) as error:
            self._router.close(request_id, queue)
            logger.warning("publish of %s failed: %s", request_id, error)
            raise TurnRefused(
                ErrorCode.UNAVAILABLE,
                "the request could not be stored; send it again",
                retryable=True,
            ) from error
        if not ack.duplicate:
            await self._records.put(
                TurnRecord(
                    request_id=request_id,
                    user_id=user_id,
                    client_message_id=send.id,
                    conversation_id=command.conversation_id,
                    user_message_id=command.user_message_id,
                    assistant_message_id=command.assistant_message_id,
                )
            )
        return AcceptedTurn(_accepted_frame(command), queue, duplicate=bool(ack.duplicate))

    async def _admit(self, identity: Identity) -> None:
        """Count the turn against the user's rate limits; `TurnRefused` when over one."""
        try:
            await self._limiter.admit(identity)
        except RateLimited as limited:
            raise TurnRefused(
                ErrorCode.RATE_LIMITED,
                limited.message,
                retryable=True,
                retry_after_ms=limited.retry_after_ms,
            ) from limited
        except (NatsError, TimeoutError, ContentionError) as error:
            logger.warning("rate limits of %s could not be checked: %s", identity.user_id, error)
            raise TurnRefused(
                ErrorCode.UNAVAILABLE, "rate limits could not be checked", retryable=True
            ) from error

    def _command(
        self, identity: Identity, request_id: UUID, send: ChatSend | ChatRegenerate
    ) -> GenerateReply:
        """The durable command of a send (new user message) or a regenerate (none)."""
        conversation_id = send.conversation_id or derived_id(request_id, "conversation")
        anchors: dict[str, object] = {"user_message_id": derived_id(request_id, "user")}
        if isinstance(send, ChatSend):
            anchors |= {
                "content": send.content,
                "parent_message_id": send.parent_message_id,
                "edit_message_id": send.edit_message_id,
            }
        else:
            anchors |= {"content": "", "regenerate": True, "user_message_id": send.message_id}
        return GenerateReply.model_validate(
            {
                "request_id": request_id,
                "client_message_id": send.id,
                "user_id": identity.user_id,
                "user_role": identity.role,
                "conversation_id": conversation_id,
                "new_conversation": send.conversation_id is None,
                "assistant_message_id": derived_id(request_id, "assistant"),
                "model": send.model,
                "provider": send.provider,
                "system": send.system,
                "temperature": send.temperature,
                "max_tokens": send.max_tokens,
                "memory": send.memory,
                "reply_subject": subjects.chat_chunks_subject(self._gateway_id, request_id),
                **anchors,
            }
        )


def _accepted_frame(command: GenerateReply) -> ChatAccepted:
    return ChatAccepted(
        id=command.client_message_id,
        request_id=command.request_id,
        conversation_id=command.conversation_id,
        user_message_id=command.user_message_id,
        assistant_message_id=command.assistant_message_id,
    )
