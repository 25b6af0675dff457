"""The /_emulator control API and its Python equivalents on EmulatorState."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
from conftest import Emulator

USER: list[Any] = [{"role": "user", "content": "what did I say?"}]


async def _reply(emu: Emulator) -> str | None:
    completion = await emu.openai.chat.completions.create(model="gpt-test", messages=USER)
    return completion.choices[0].message.content


async def test_script_is_consumed_fifo_then_defaults(emu: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emu.url) as http:
        queued = await http.post(
            "/_emulator/script", json=[{"reply": "first"}, {"reply": "second"}]
        )
        assert queued.json() == {"queued": 2}
        assert (await http.post("/_emulator/script", json={"reply": "third"})).json() == {
            "queued": 3
        }
        pending = await http.get("/_emulator/script")
        assert pending.json() == [{"reply": "first"}, {"reply": "second"}, {"reply": "third"}]

        replies = [await _reply(emu) for _ in range(4)]

        assert replies == ["first", "second", "third", "Emulated reply to: what did I say?"]
        assert (await http.get("/_emulator/script")).json() == []
    assert [r.scripted for r in emu.state.requests()] == [True, True, True, False]


async def test_script_is_shared_across_providers_in_arrival_order(emu: Emulator) -> None:
    emu.state.script({"reply": "to openai"}, {"reply": "to anthropic"})

    assert await _reply(emu) == "to openai"
    message = await emu.anthropic.messages.create(model="claude-test", max_tokens=50, messages=USER)
    assert message.content[0].type == "text"
    assert message.content[0].text == "to anthropic"


async def test_requests_show_prompt_and_hide_credentials(emu: Emulator) -> None:
    before = time.time()
    stream = await emu.openai.chat.completions.create(
        model="gpt-test", messages=USER, stream=True, extra_headers={"x-trace": "abc"}
    )
    async for _ in stream:
        pass
    await emu.anthropic.messages.create(
        model="claude-test", max_tokens=50, system="sys", messages=USER
    )

    async with httpx.AsyncClient(base_url=emu.url) as http:
        records = (await http.get("/_emulator/requests")).json()

    assert [r["path"] for r in records] == ["/v1/chat/completions", "/v1/messages"]
    oai, ant = records
    assert oai["body"]["messages"] == USER
    assert oai["stream"] is True
    assert oai["headers"]["x-trace"] == "abc"
    assert oai["outcome"] == "completed"
    assert oai["disconnected"] is False
    # "Emulated reply to: what did I say?" is 7 tokens; plus role, finish and [DONE].
    assert oai["tokens_sent"] == 7
    assert oai["chunks_sent"] == 1 + 7 + 2
    assert before <= oai["received_at"] <= time.time()
    assert ant["body"]["system"] == "sys"
    assert ant["stream"] is False
    assert ant["status"] == 200
    for record in records:
        assert "authorization" not in record["headers"]
        assert "x-api-key" not in record["headers"]
        assert "secret" not in str(record["headers"])


async def test_reset_clears_script_and_requests(emu: Emulator) -> None:
    emu.state.script({"reply": "queued"}, {"reply": "also queued"})
    await _reply(emu)
    async with httpx.AsyncClient(base_url=emu.url) as http:
        assert (await http.post("/_emulator/reset")).json() == {"ok": True}
        assert (await http.get("/_emulator/requests")).json() == []
        assert (await http.get("/_emulator/script")).json() == []
    assert await _reply(emu) == "Emulated reply to: what did I say?"


async def test_invalid_script_is_rejected_and_nothing_queued(emu: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emu.url) as http:
        response = await http.post(
            "/_emulator/script", json=[{"reply": "fine"}, {"cut_after_tokens": "soon"}]
        )
        assert response.status_code == 400
        assert "cut_after_tokens" in response.json()["error"]
        assert (await http.post("/_emulator/script", content=b"not json")).status_code == 400
    assert emu.state.pending_script() == []


async def test_rejected_request_does_not_consume_script(emu: Emulator) -> None:
    emu.state.script({"reply": "kept for the valid request"})
    async with httpx.AsyncClient(base_url=emu.url) as http:
        response = await http.post(
            "/v1/messages",
            json={"model": "m", "messages": USER},  # no max_tokens
        )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    assert emu.last_request().scripted is False

    assert await _reply(emu) == "kept for the valid request"


async def test_openai_sdk_sees_bad_request_for_empty_messages(emu: Emulator) -> None:
    try:
        await emu.openai.chat.completions.create(model="gpt-test", messages=[])
    except openai.BadRequestError as error:
        assert error.response.json()["error"]["type"] == "invalid_request_error"
    else:
        raise AssertionError("expected BadRequestError")
