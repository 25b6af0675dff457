"""Pure-function tests: tokenizer, prompt extraction, script validation, planning."""

from __future__ import annotations

import pytest
from chatbus_emulator import EmulatorState, ScriptedResponse
from chatbus_emulator.plan import build_plan
from chatbus_emulator.prompt import anthropic_prompt, openai_prompt
from chatbus_emulator.tokens import estimate_tokens, filler_tokens, tokenize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, world!", ["Hello,", " world!"]),
        ("  lead and trail  ", ["  lead", " and", " trail", "  "]),
        ("line\nbreak\n\ttab", ["line", "\nbreak", "\n\ttab"]),
        ("", []),
        ("   ", ["   "]),
    ],
)
def test_tokenize_keeps_whitespace(text: str, expected: list[str]) -> None:
    tokens = tokenize(text)
    assert tokens == expected
    assert "".join(tokens) == text


def test_filler_tokens_are_deterministic_and_retokenize_identically() -> None:
    tokens = filler_tokens(15)
    assert len(tokens) == 15
    assert "".join(tokens).startswith("lorem ipsum dolor sit amet")
    assert tokenize("".join(tokens)) == tokens
    assert filler_tokens(15) == tokens
    assert filler_tokens(0) == []


def test_estimate_tokens_counts_words_with_minimum_one() -> None:
    assert estimate_tokens(["one two", " three "]) == 3
    assert estimate_tokens([]) == 1
    assert estimate_tokens(["   "]) == 1


def test_openai_prompt_reads_string_and_part_contents() -> None:
    prompt = openai_prompt(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "an answer"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "second"},
                        {"type": "image_url", "image_url": {"url": "data:..."}},
                        {"type": "text", "text": " question here"},
                    ],
                },
            ]
        }
    )
    assert prompt.last_user_text == "second question here"
    assert prompt.estimated_tokens == 2 + 2 + 2 + 3


def test_anthropic_prompt_includes_system_blocks_with_cache_control() -> None:
    prompt = anthropic_prompt(
        {
            "system": [
                {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}
            ],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi there"}]},
                {"role": "assistant", "content": "hello"},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "tool output"},
                        {"type": "text", "text": "thanks"},
                    ],
                },
            ],
        }
    )
    assert prompt.texts[0] == "You are terse."
    assert prompt.last_user_text == "tool outputthanks"
    assert prompt.estimated_tokens == 3 + 2 + 1 + 2 + 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stall_after_tokens": 1, "cut_after_tokens": 2}, "at most one fault"),
        ({"status": 429, "malformed_after_tokens": 0}, "at most one fault"),
        ({"retry_after": 3}, "retry_after requires status"),
        ({"status": 200}, "status must be"),
        ({"reply": "x", "reply_tokens": 3}, "either reply or reply_tokens"),
        ({"cut_after_tokens": -1}, ">= 0"),
        ({"bogus": 1}, "unknown scripted response field"),
        ({"reply_tokens": True}, "must be an integer"),
        ({"reply_tokens": "5"}, "must be an integer"),
        ({"first_token_delay_ms": "fast"}, "must be a number"),
        ({"reply": 5}, "reply must be a string"),
    ],
)
def test_scripted_response_rejects_invalid_input(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScriptedResponse.from_dict(data)


def test_scripted_response_round_trips_through_dict() -> None:
    script = ScriptedResponse(reply="hi", first_token_delay_ms=5, status=None, cached_tokens=3)
    assert script.to_dict() == {"reply": "hi", "first_token_delay_ms": 5, "cached_tokens": 3}
    assert ScriptedResponse.from_dict(script.to_dict()) == script


def test_state_script_validates_all_items_before_queueing() -> None:
    state = EmulatorState()
    with pytest.raises(ValueError):
        state.script({"reply": "ok"}, {"reply_tokens": -1})
    assert state.pending_script() == []
    assert state.script(ScriptedResponse(reply="a"), {"reply": "b"}) == 2
    assert [s.reply for s in state.pending_script()] == ["a", "b"]


def test_plan_truncates_to_max_tokens_and_prefers_script_over_defaults() -> None:
    state = EmulatorState(reply="one two three four", first_token_delay_ms=40)
    prompt = openai_prompt({"messages": [{"role": "user", "content": "q"}]})

    default = build_plan(script=None, state=state, prompt=prompt, max_tokens=2)
    assert default.tokens == ("one", " two")
    assert default.truncated
    assert default.first_token_delay == pytest.approx(0.04)

    scripted = build_plan(
        script=ScriptedResponse(reply_tokens=3, first_token_delay_ms=0),
        state=state,
        prompt=prompt,
        max_tokens=10,
    )
    assert scripted.text == "lorem ipsum dolor"
    assert not scripted.truncated
    assert scripted.first_token_delay == 0


def test_default_reply_quotes_last_user_message() -> None:
    prompt = openai_prompt({"messages": [{"role": "user", "content": "What is 2+2?"}]})
    plan = build_plan(script=None, state=EmulatorState(), prompt=prompt, max_tokens=None)
    assert plan.text == "Emulated reply to: What is 2+2?"
