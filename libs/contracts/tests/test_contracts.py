from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest
from chatbus_contracts import subjects
from chatbus_contracts.chunks import REPLY_CHUNK_ADAPTER, DeltaChunk, EndChunk
from chatbus_contracts.common import TokenUsage, derived_id, format_usd
from chatbus_contracts.streams import ALL_STREAMS, EVENTS
from chatbus_contracts.ws import CLIENT_FRAME_ADAPTER, ChatSend
from pydantic import ValidationError


def test_derived_ids_are_stable_and_distinct() -> None:
    assert derived_id("request", "alice", "m1") == derived_id("request", "alice", "m1")
    assert derived_id("request", "alice", "m1") != derived_id("request", "bob", "m1")


def test_token_usage_round_trips_with_its_computed_total() -> None:
    usage = TokenUsage(prompt_tokens=10, completion_tokens=5, cached_tokens=2)
    dumped = usage.model_dump_json()
    assert '"total_tokens":15' in dumped
    assert TokenUsage.model_validate_json(dumped) == usage


def test_chunks_are_discriminated_by_kind() -> None:
    request_id = uuid4()
    delta = DeltaChunk(request_id=request_id, seq=1, text="hi")
    assert REPLY_CHUNK_ADAPTER.validate_json(delta.model_dump_json()) == delta
    end = EndChunk(
        request_id=request_id,
        seq=2,
        message_id=uuid4(),
        finish_reason="stop",
        usage=TokenUsage(prompt_tokens=1, completion_tokens=1),
        cost_usd=Decimal("0.1"),
        model="m",
        provider="p",
        latency_ms=3,
    )
    assert isinstance(REPLY_CHUNK_ADAPTER.validate_json(end.model_dump_json()), EndChunk)


def test_chat_send_refuses_unknown_fields_and_bad_ranges() -> None:
    frame = CLIENT_FRAME_ADAPTER.validate_python({"type": "chat.send", "id": "a", "content": "x"})
    assert isinstance(frame, ChatSend)
    for bad in ({"extra": 1}, {"temperature": 3}, {"max_tokens": 0}, {"id": ""}):
        with pytest.raises(ValidationError):
            CLIENT_FRAME_ADAPTER.validate_python(
                {"type": "chat.send", "id": "a", "content": "x", **bad}
            )


def test_format_usd_never_uses_an_exponent() -> None:
    assert format_usd(Decimal("1.95E-4")) == "0.000195"
    assert format_usd(Decimal("0E-10")) == "0"
    assert format_usd(None) is None


def test_request_reply_subjects_are_outside_every_stream() -> None:
    query_subjects = [
        subjects.CONVERSATION_QUERY_GET,
        subjects.CONVERSATION_QUERY_HISTORY,
        subjects.CONVERSATION_QUERY_LIST,
    ]
    stored = {s for spec in ALL_STREAMS for s in spec.subjects}
    assert not stored & set(query_subjects)
    assert set(subjects.EVENT_SUBJECTS) == set(EVENTS.subjects)
