"""Generated titles: a real model (through the emulator) names a conversation, once."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from chatbus_contracts import subjects
from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.conversations import ConversationChanged, UpdateConversation
from chatbus_inference.providers.openai import OpenAIProvider
from chatbus_inference.routing import Route
from chatbus_inference.titles import TitleWriter
from chatbus_runtime.bus import create_broker, publish_event
from chatbus_runtime.settings import ServiceSettings
from openai import AsyncOpenAI
from opentelemetry.sdk.trace import TracerProvider
from websockets.asyncio.client import connect

from .eventbus import connected_bus, conversation_created, message_created
from .stack import MODEL, Stack
from .wsclient import read_turn, send

pytestmark = pytest.mark.integration


async def test_a_generated_title_is_applied_billed_and_never_overrides_a_rename(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    user = f"titled-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    broker = create_broker(
        ServiceSettings(nats_url=stack.infra.nats_url),
        service_name="title-test",
        tracer_provider=TracerProvider(),
    )
    await broker.connect()
    provider = OpenAIProvider(
        AsyncOpenAI(api_key="emulator", base_url=f"{stack.emulator_url}/v1", max_retries=0)
    )
    route = Route(provider, MODEL, context_window=128_000, max_output_tokens=1000)
    writer = TitleWriter(broker, router=None, title_model=None, timeout_seconds=10)  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers) as api:
            conversation = (await api.post("/v1/conversations", json={})).json()
            request = GenerateReply(
                request_id=uuid.uuid4(),
                client_message_id="t1",
                user_id=user,
                conversation_id=uuid.UUID(conversation["id"]),
                new_conversation=True,
                user_message_id=uuid.uuid4(),
                assistant_message_id=uuid.uuid4(),
                content="How do I plan a week in Lisbon?",
                reply_subject="chat.chunks.none.none",
            )
            stack.emulator.script({"reply": '"Planning A Week In Lisbon."'})
            await writer.write(request, route, "Start with Alfama, then Belém.")
            path = f"/v1/conversations/{conversation['id']}"
            assert (await api.get(path)).json()["title"] == "Planning A Week In Lisbon"
            prompt = stack.emulator.requests()[-1].body["messages"]
            assert "Lisbon" in prompt[-1]["content"] and prompt[0]["role"] == "system"

            await api.patch(path, json={"title": "My trip"})
            stack.emulator.script({"reply": "Something Else"})
            await writer.write(request, route, "…")
            assert (await api.get(path)).json()["title"] == "My trip"
            assert not _title_warnings(caplog)  # kept the rename: answered, not refused

            elsewhere = request.model_copy(update={"conversation_id": uuid.uuid4()})
            stack.emulator.script({"reply": "Nowhere"})
            await writer.write(elsewhere, route, "…")
            (warning,) = _title_warnings(caplog)
            assert "refused, conversation_not_found" in warning

        async def billed() -> bool:
            rows = await stack.fetch(
                "SELECT kind, model FROM usage.ledger WHERE user_id = $1", user
            )
            return [r["kind"] for r in rows] == ["title"]

        await stack.wait_for(billed)
    finally:
        await provider.aclose()
        await broker.stop()


async def test_a_conversation_created_by_rest_is_titled_after_its_first_turn(stack: Stack) -> None:
    user = f"untitled-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers) as api:
        conversation = (await api.post("/v1/conversations", json={})).json()
        assert conversation["title"] == "New conversation"
        async with connect(stack.ws_url, additional_headers=headers) as ws:
            frame = {
                "type": "chat.send",
                "id": "first",
                "conversation_id": conversation["id"],
                "content": "Compare Rust and Go for CLIs",
            }
            await send(ws, frame)
            assert (await read_turn(ws)).end is not None

        # The stack titles with the demo provider: the first words of the question.
        async def titled() -> bool:
            view = (await api.get(f"/v1/conversations/{conversation['id']}")).json()
            return bool(view["title"] == "Compare Rust and Go for CLIs")

        await stack.wait_for(titled, within_seconds=5)


async def test_a_title_proposed_before_the_projection_stored_the_conversation_applies(
    stack: Stack,
) -> None:
    """Inference proposes a title right after `chat.end`; under load the conversation's
    `conversation.created` may still wait in the projection's backlog. The title waits
    for the events published before it, instead of being refused as not found."""
    user = f"early-title-{uuid.uuid4().hex[:6]}"
    async with connected_bus(stack) as bus:
        # A backlog of other conversations, published at once, ahead of this one.
        backlog = [conversation_created(user, f"backlog {n}") for n in range(300)]
        await asyncio.gather(*(publish_event(bus, event) for event in backlog))
        created = conversation_created(user, "Compare Rust and Go")
        await publish_event(bus, created)
        await publish_event(bus, message_created(user, created.conversation_id, "Compare"))
        command = UpdateConversation(
            user_id=user, conversation_id=created.conversation_id, generated_title="Rust vs Go"
        )
        reply = await bus.request(command, subjects.CONVERSATION_COMMAND_UPDATE, timeout=10)
    changed = ConversationChanged.model_validate_json(reply.body)
    assert changed.conversation.title == "Rust vs Go"


def _title_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "chatbus_inference.titles" and record.levelname == "WARNING"
    ]
