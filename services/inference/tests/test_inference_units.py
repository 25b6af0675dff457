from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest
from chatbus_contracts.commands import GenerateReply
from chatbus_contracts.common import ChatSettings, TokenUsage, utc_now
from chatbus_contracts.queries import MessageView
from chatbus_inference.plan import TurnPlan, effective_settings, history_query
from chatbus_inference.providers.base import CompletionRequest, Finished, PromptMessage, TextDelta
from chatbus_inference.providers.demo import DemoProvider
from chatbus_inference.settings import InferenceSettings
from chatbus_runtime.pricing import (
    OVERRIDE_SOURCE,
    ModelPrice,
    install_price_overrides,
    price_billed_call,
    price_call,
)
from genai_prices import Usage, calc_price
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader


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


def _history(conversation_id: object) -> list[MessageView]:
    return [
        MessageView.model_validate(
            dict(
                id=uuid4(),
                conversation_id=conversation_id,
                request_id=uuid4(),
                role=role,
                content=content,
                parent_id=None,
                created_at=utc_now(),
            )
        )
        for role, content in (("user", "q1"), ("assistant", "a1"))
    ]


def test_prompt_is_system_then_history_then_the_new_message() -> None:
    request = _request()
    plan = TurnPlan(
        history=[PromptMessage(m.role, m.content) for m in _history(request.conversation_id)],
        new_content="now",
        conversation_settings=ChatSettings(),
        settings=ChatSettings(system_prompt="be brief"),
        user_parent_id=None,
        assistant_parent_id=request.user_message_id,
    )
    assert [(m.role, m.content) for m in plan.prompt] == [
        ("system", "be brief"),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "now"),
    ]


def test_turn_overrides_win_over_conversation_settings() -> None:
    conversation = ChatSettings(
        system_prompt="stored", model="gpt-4o", temperature=0.7, max_tokens=100
    )
    request = _request(model="claude-sonnet", temperature=0.0)
    settings = effective_settings(request, conversation)
    assert settings == ChatSettings(
        system_prompt="stored", model="claude-sonnet", temperature=0.0, max_tokens=100
    )


def test_history_anchors_follow_the_request() -> None:
    parent, edited, question = uuid4(), uuid4(), uuid4()
    branch = history_query(_request(parent_message_id=parent))
    assert branch.leaf_id == parent
    edit = history_query(_request(edit_message_id=edited))
    assert edit.leaf_id == edited
    again = history_query(_request(regenerate=True, user_message_id=question, content=""))
    assert (again.leaf_id, again.exclude_request_id) == (question, None)
    active = history_query(_request())
    assert active.leaf_id is None and active.exclude_request_id is not None


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


def test_a_call_without_a_price_counts_in_the_unpriced_calls_metric() -> None:
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    usage = TokenUsage(prompt_tokens=10, completion_tokens=2)
    price_billed_call(usage, "gpt-4o-mini", "openai")
    price_billed_call(usage, "unpriced-model-abc", "openai")
    price_billed_call(usage, "unpriced-model-abc", "openai")
    price_call(usage, "unpriced-model-abc", "openai")  # a reservation's estimate: not a call
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "chatbus.unpriced_calls"
        for point in metric.data.data_points
    ]
    assert [(p.attributes, p.value) for p in points] == [  # type: ignore[union-attr]
        ({"model": "unpriced-model-abc", "provider": "openai"}, 2)
    ]


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


def test_an_operator_override_prices_a_model_exactly_and_wins_over_the_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overrides = {
        "llama3.1": ModelPrice(input_per_mtok=Decimal("0.1"), output_per_mtok=Decimal("0.2")),
        "gpt-4o-mini": ModelPrice(
            input_per_mtok=Decimal("1"),
            output_per_mtok=Decimal("2"),
            cache_read_per_mtok=Decimal("0.5"),
        ),
    }
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400)
    install_price_overrides(overrides)
    try:
        assert price_call(usage, "llama3.1", "openai") == (Decimal("0.0002"), OVERRIDE_SOURCE)
        # 600 uncached at $1, 400 cached at $0.5, 500 out at $2 per million.
        assert price_call(usage, "gpt-4o-mini", "openai")[0] == Decimal("0.0018")
    finally:
        install_price_overrides({})
    assert price_call(usage, "llama3.1", "openai") == (None, None)
    assert price_call(usage, "gpt-4o-mini", "openai")[1] != OVERRIDE_SOURCE
    overrides_json = '{"m": {"input_per_mtok": "3", "output_per_mtok": "15"}}'
    monkeypatch.setenv("CHATBUS_PRICE_OVERRIDES", overrides_json)
    settings = InferenceSettings()
    assert settings.price_overrides["m"].output_per_mtok == Decimal(15)
