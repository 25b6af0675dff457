from __future__ import annotations

import json

import pytest
from chatbus_contracts.ws import ChatSend, Ping
from chatbus_gateway.auth import bearer_token
from chatbus_gateway.frames import BadFrame, parse_client_frame


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "invalid_json"),
        ("[1]", "invalid_frame"),
        ('{"id": "x"}', "unknown_type"),
        ('{"type": "chat.send", "id": "x", "content": ""}', "invalid_frame"),
    ],
)
def test_bad_frames_map_to_stable_codes(text: str, code: str) -> None:
    with pytest.raises(BadFrame) as raised:
        parse_client_frame(text)
    assert raised.value.error.code == code


def test_good_frames_parse() -> None:
    assert isinstance(parse_client_frame('{"type": "ping"}'), Ping)
    frame = parse_client_frame(json.dumps({"type": "chat.send", "id": "a", "content": "hi"}))
    assert isinstance(frame, ChatSend) and frame.content == "hi"


def test_invalid_frame_names_the_field() -> None:
    with pytest.raises(BadFrame) as raised:
        parse_client_frame(json.dumps({"type": "chat.send", "id": "a", "content": 3}))
    assert "content" in raised.value.error.message and raised.value.error.id == "a"


def test_bearer_token() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None
