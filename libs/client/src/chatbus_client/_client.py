"""`ChatbusClient`: chat turns over the WebSocket, everything else over REST."""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Self
from uuid import UUID

from chatbus_contracts.ws import ChatRegenerate, ChatSend

from ._errors import ChatbusError
from ._live import ConversationEvents
from ._reconnect import Reconnect
from ._rest import RestClient
from ._socket import TurnSocket
from ._stream import ChatStream


def websocket_url(url: str) -> str:
    """`http://host:port` -> `ws://host:port/v1/ws` (https -> wss)."""
    base = url.rstrip("/")
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(http):
            return ws + base.removeprefix(http) + "/v1/ws"
    raise ValueError(f"the gateway URL must start with http:// or https://, not {url!r}")


def _uuid(value: UUID | str | None) -> UUID | None:
    return UUID(str(value)) if value is not None else None


class ChatbusClient(RestClient):
    """A connection to one chatbus gateway: chat on one WebSocket, REST for the rest.

    `url` is the gateway's base URL (`http://host:port`), `token` a JWT or API key.
    Use it as `async with ChatbusClient(url, token) as client:`; entering connects the
    socket and checks the token, leaving closes both. A dropped socket is reconnected
    as `reconnect` says, and unfinished turns carry on where they were.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        reconnect: Reconnect | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(url, token, timeout=timeout)
        self._socket = TurnSocket(
            websocket_url(url), token, reconnect or Reconnect(), open_timeout=timeout
        )

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the WebSocket; `ChatbusError` (`connection_failed`, `unauthenticated`) if not."""
        try:
            await self._socket.open()
        except ChatbusError:
            await self.aclose()
            raise

    async def close(self) -> None:
        """Close the socket and the HTTP pool; running turns fail with `closed`."""
        await self._socket.close()
        await self.aclose()

    @property
    def reconnects(self) -> int:
        """How often the socket was reconnected after a drop."""
        return self._socket.reconnects

    @property
    def connected(self) -> bool:
        """Whether the socket is open right now (False while reconnecting)."""
        return self._socket.connected

    def chat(
        self,
        content: str,
        conversation_id: UUID | str | None = None,
        *,
        parent_message_id: UUID | str | None = None,
        edit_message_id: UUID | str | None = None,
        model: str | None = None,
        provider: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        client_id: str | None = None,
    ) -> ChatStream:
        """Start a turn at once and return its stream (iterate it for the text).

        `conversation_id=None` starts a new conversation. `parent_message_id` continues
        after another answer (a branch), `edit_message_id` replaces a user message. The
        overrides apply to this turn only. `client_id` is the idempotency key (default:
        a random one).
        """
        frame = ChatSend(
            id=client_id or uuid.uuid4().hex,
            conversation_id=_uuid(conversation_id),
            content=content,
            parent_message_id=_uuid(parent_message_id),
            edit_message_id=_uuid(edit_message_id),
            model=model,
            provider=provider,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        return self._start(ChatStream(frame, self._socket.stop))

    def regenerate(
        self,
        conversation_id: UUID | str,
        message_id: UUID | str,
        *,
        model: str | None = None,
        provider: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        client_id: str | None = None,
    ) -> ChatStream:
        """Answer a user message (or an assistant message's question) again, as a sibling."""
        frame = ChatRegenerate(
            id=client_id or uuid.uuid4().hex,
            conversation_id=UUID(str(conversation_id)),
            message_id=UUID(str(message_id)),
            model=model,
            provider=provider,
            system=system,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        return self._start(ChatStream(frame, self._socket.stop))

    async def stop(self, request_id: UUID | str) -> None:
        """Stop a running generation; its turn ends with `stopped` (the partial answer kept)."""
        await self._socket.stop(UUID(str(request_id)))

    def conversation_events(self) -> ConversationEvents:
        """Live `conversation.*` frames from now on (`async for frame in ...`; `close()`)."""
        return self._socket.subscribe()

    def _start(self, stream: ChatStream) -> ChatStream:
        self._socket.submit(stream)
        return stream
