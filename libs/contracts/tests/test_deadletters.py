from __future__ import annotations

from chatbus_contracts.deadletters import (
    DEAD_LETTER_HEADER,
    MAX_ERROR_CHARS,
    DeadLetter,
    dead_letter_headers,
    read_dead_letter,
    short_error,
)
from chatbus_contracts.streams import ALL_STREAMS, DEAD_LETTERS


def test_a_dead_letter_travels_as_one_ascii_header_line_and_reads_back() -> None:
    letter = DeadLetter(
        consumer="usage",
        stream="EVENTS",
        subject="usage.recorded",
        stream_seq=42,
        deliveries=10,
        reason="handler_error",
        error_type="ValueError",
        error=short_error(ValueError("line one\nline two — ünïcode " + "x" * 5000)),
        headers={"Nats-Msg-Id": "e-1", "traceparent": "00-abc-def-01"},
    )
    headers = dead_letter_headers(letter)
    value = headers[DEAD_LETTER_HEADER]
    assert value.isascii() and "\n" not in value and "\r" not in value
    assert headers["Nats-Msg-Id"] == "dead-letter:EVENTS:usage:42"
    assert read_dead_letter(headers) == letter
    assert len(letter.error) == MAX_ERROR_CHARS
    assert read_dead_letter({"Nats-Msg-Id": "x"}) is None


def test_the_dead_letters_stream_is_declared_with_the_others() -> None:
    assert DEAD_LETTERS in ALL_STREAMS
    assert DEAD_LETTERS.subjects == ("deadletters.>",)
    others = {s for spec in ALL_STREAMS if spec is not DEAD_LETTERS for s in spec.subjects}
    assert not any(s.startswith("deadletters.") for s in others)
