from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.common import TokenUsage, utc_now
from chatbus_contracts.queries import MessageView
from chatbus_inference.pricing import price_call
from chatbus_inference.prompt import build_prompt
from chatbus_inference.providers.base import CompletionRequest, Finished, PromptMessage, TextDelta
from chatbus_inference.providers.demo import DemoProvider
from genai_prices import Usage, calc_price


def _request(**fields: object) -> GenerateReply:
    base: dict[str, object] = dict(
        request_id=uuid4(),
        client_message_id="c",
        user_id="u",
        conversation_id=uuid4(),
        new_conversation=False,
        user_message_id=uuid4(),
        assistant_message_id=uuid4(),
        content="now",
        reply_subject="chat.chunks.g.r",
    )
    return GenerateReply.model_validate({**base, **fields})


def test_prompt_is_system_then_history_then_the_new_message() -> None:
    request = _request(system="be brief")
    history = [
        MessageView(
            id=uuid4(),
            conversation_id=request.conversation_id,
            request_id=uuid4(),
            role=role,
            content=content,
            parent_id=None,
            created_at=utc_now(),
        )
        for role, content in (("user", "q1"), ("assistant", "a1"))
    ]
    prompt = build_prompt(request, history)
    assert [(m.role, m.content) for m in prompt] == [
        ("system", "be brief"),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "now"),
    ]


def test_price_comes_from_genai_prices_and_unknown_models_are_null() -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=200, cached_tokens=100)
    cost, source = price_call(usage, "gpt-4o-mini", "openai")
    expected = calc_price(
        Usage(input_tokens=1000, output_tokens=200, cache_read_tokens=100, cache_write_tokens=0),
        "gpt-4o-mini",
        provider_id="openai",
    )
    assert cost == expected.total_price and source and source.startswith("genai-prices")
    assert price_call(usage, "no-such-model-xyz", "openai") == (None, None)
    assert price_call(usage, "demo", "demo")[0] == Decimal(0)


async def test_demo_provider_says_it_is_a_demo_and_respects_max_tokens() -> None:
    provider = DemoProvider(token_delay_seconds=0)
    request = CompletionRequest(model="demo", messages=[PromptMessage("user", "hello there")])
    events = [event async for event in provider.stream(request)]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "demo provider" in text and "hello there" in text
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.finish_reason == "stop"
    assert finished.usage.completion_tokens == len(events) - 1
    short = CompletionRequest(model="demo", messages=request.messages, max_tokens=3)
    events = [event async for event in provider.stream(short)]
    assert len(events) == 4 and isinstance(events[-1], Finished)
    assert events[-1].finish_reason == "length"
