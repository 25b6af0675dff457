from __future__ import annotations

from uuid import uuid4

import pytest
from chatbus_contracts.common import utc_now
from chatbus_conversation.store import InvalidCursor, decode_cursor, encode_cursor


def test_cursor_round_trips() -> None:
    created_at, conversation_id = utc_now(), uuid4()
    assert decode_cursor(encode_cursor(created_at, conversation_id)) == (
        created_at,
        conversation_id,
    )


@pytest.mark.parametrize("cursor", ["", "not-base64!", "aGVsbG8=", "YXxi"])
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)
