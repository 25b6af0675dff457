"""chatbus client: chat with a chatbus gateway from asyncio code.

One `ChatbusClient` holds one WebSocket (`/v1/ws`, docs/protocol.md) for chat turns
and an HTTP pool for the REST routes (docs/api.md)::

    import asyncio
    from chatbus_client import ChatbusClient, ChatbusError

    async def main() -> None:
        async with ChatbusClient("http://127.0.0.1:8000", token) as client:
            stream = client.chat("Plan a day in Lisbon", model="gpt-4o-mini")
            async for text in stream:            # the answer, piece by piece
                print(text, end="", flush=True)
            turn = stream.result                 # ids, the whole text, usage, cost
            print(f"\\n[{turn.finish_reason}, ${turn.cost_usd}]")

            follow_up = await client.chat("And in the evening?", turn.conversation_id)
            page = await client.list_conversations()
            await client.rename_conversation(turn.conversation_id, "Lisbon")

    asyncio.run(main())

Turns:

- `client.chat(...)` / `client.regenerate(...)` send at once and return a
  `ChatStream`; `async for text in stream` yields the new text, `await stream` (or
  `stream.collect()`) just waits, and either way `stream.result` is the `Turn`.
  Several turns may run at once on the one socket.
- `await stream.stop()` or `await client.stop(request_id)`: the turn ends with
  `turn.stopped` and the partial answer, which is stored.
- A `chat.error` raises `ChatbusError` (`code`, `message`, `retryable`) from the
  iteration.
- If the server lost the replica writing an answer, the answer starts over
  (`chat.restart`): `stream.restarts` grows, `stream.text` starts again, and the next
  piece is the new answer's first; drop what you showed of the old one.

Reconnecting: when the socket drops (a gateway restart closes it with 1012; the
gateway may refuse connections for a while) the client reconnects with backoff
(`Reconnect`), resends turns that were not accepted yet (same `id`, idempotent) and
resumes the others after the last `seq` it delivered. The text arrives exactly once,
without gap; after the attempts run out the turns fail with `connection_lost`. A
retryable `unavailable` for a turn not yet accepted (e.g. a gateway that is draining)
is sent again after a while, like a resume the gateway could not answer.

Live frames: `client.conversation_events()` iterates the `conversation.*` frames
(another tab renamed or deleted a conversation); nobody has to read them.

REST: `list_conversations`, `get_conversation`, `create_conversation`,
`update_conversation` / `rename_conversation`, `delete_conversation`, `search`,
`get_preferences` / `set_preferences`, `models` and `usage`; they return the models of
`chatbus_contracts` and raise `ChatbusError` with the body's `code` and the HTTP
`status` on an error answer. `RestClient` alone does REST without a socket.
"""

from ._client import ChatbusClient, websocket_url
from ._errors import ChatbusError
from ._frames import ConversationFrame
from ._live import ConversationEvents
from ._reconnect import Reconnect
from ._rest import UNSET, RestClient
from ._stream import ChatStream, Turn

__all__ = [
    "UNSET",
    "ChatStream",
    "ChatbusClient",
    "ChatbusError",
    "ConversationEvents",
    "ConversationFrame",
    "Reconnect",
    "RestClient",
    "Turn",
    "websocket_url",
]
