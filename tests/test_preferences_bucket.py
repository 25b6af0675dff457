"""A new conversation's first turn takes the user's preferences from `user_preferences`.

The conversation service writes each change there after its commit, and a missing key
when a new conversation asks it; it never replaces a newer value with what it read.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from chatbus_contracts.common import user_key
from chatbus_contracts.conversations import Preferences
from chatbus_contracts.streams import USER_PREFERENCES
from chatbus_conversation.app import ConversationService
from chatbus_conversation.preferences_bucket import PreferencesBucket
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from websockets.asyncio.client import connect

from .eventbus import connected_bus, jetstream
from .stack import Stack, unique_user
from .wsclient import Turn, read_turn, send


async def _new_conversation_turn(stack: Stack, user: str, content: str) -> Turn:
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    async with connect(stack.ws_url, additional_headers=headers) as ws:
        await send(ws, {"type": "chat.send", "id": uuid.uuid4().hex, "content": content})
        async with asyncio.timeout(30):
            return await read_turn(ws)


def _system_prompt_sent(stack: Stack, content: str) -> str | None:
    bodies = [
        r.body["messages"]
        for r in stack.emulator.requests()
        if r.body.get("messages") and r.body["messages"][-1]["content"] == content
    ]
    assert len(bodies) == 1, f"{len(bodies)} provider requests ended with {content!r}"
    first = bodies[0][0]
    return str(first["content"]) if first["role"] == "system" else None


async def _stored(kv: KeyValue, user: str) -> dict[str, Any] | None:
    try:
        entry = await kv.get(user_key(user))
    except KeyNotFoundError:
        return None
    return dict(json.loads(entry.value or b""))


def _preferences(tag: str) -> dict[str, Any]:
    return {
        "default_model": None,
        "default_system_prompt": f"Speak like a sailor {tag}",
        "default_memory": None,
    }


async def test_a_new_conversation_takes_the_preferences_without_the_conversation_service(
    stack: Stack,
) -> None:
    user, tag = unique_user("bucket-prefs"), uuid.uuid4().hex[:8]
    async with stack.api(user) as api:
        assert (await api.put("/v1/preferences", json=_preferences(tag))).status_code == 200
    async with jetstream(stack.infra) as js:
        kv = await js.key_value(USER_PREFERENCES.name)
        assert await _stored(kv, user) == _preferences(tag)  # written before the answer
    async with stack.paused(ConversationService):  # no history query can be answered
        turn = await _new_conversation_turn(stack, user, f"ahoy {tag}")
    assert turn.error is None and turn.end is not None
    assert _system_prompt_sent(stack, f"ahoy {tag}") == f"Speak like a sailor {tag}"


async def test_a_missing_key_is_answered_by_the_conversation_service_and_filled_in(
    stack: Stack,
) -> None:
    user, tag = unique_user("bucket-miss"), uuid.uuid4().hex[:8]
    newcomer = unique_user("bucket-newcomer")
    async with stack.api(user) as api:
        assert (await api.put("/v1/preferences", json=_preferences(tag))).status_code == 200
    async with jetstream(stack.infra) as js:
        kv = await js.key_value(USER_PREFERENCES.name)
        await kv.purge(user_key(user))  # as after an expiry, or a write that failed
        assert await _stored(kv, user) is None
        turn = await _new_conversation_turn(stack, user, f"ahoy again {tag}")
        assert turn.end is not None
        assert _system_prompt_sent(stack, f"ahoy again {tag}") == f"Speak like a sailor {tag}"
        assert await _stored(kv, user) == _preferences(tag)
        # A user who never set any gets the all-unset preferences written too.
        assert (await _new_conversation_turn(stack, newcomer, f"hi {tag}")).end is not None
        assert await _stored(kv, newcomer) == Preferences().model_dump()


async def test_what_was_read_never_replaces_a_newer_change(stack: Stack) -> None:
    user, tag = unique_user("bucket-race"), uuid.uuid4().hex[:8]
    newer = Preferences.model_validate(_preferences(tag))
    async with connected_bus(stack) as broker:
        bucket = PreferencesBucket(broker)
        await bucket.put(user, newer)
        await bucket.offer(user, Preferences())  # read from Postgres before that change
    async with jetstream(stack.infra) as js:
        kv = await js.key_value(USER_PREFERENCES.name)
        assert await _stored(kv, user) == newer.model_dump()
