"""The conversation consumer's memory of the events whose change its process committed."""

from __future__ import annotations

from uuid import uuid4

from chatbus_conversation.own_events import OwnEvents
from nats.aio.msg import Msg


def delivery(event_id: object) -> Msg:
    return Msg(None, subject="conversation.updated", headers={"Nats-Msg-Id": str(event_id)})  # type: ignore[arg-type]


def test_a_committed_event_is_skipped_once_and_others_are_applied() -> None:
    own = OwnEvents()
    mine, theirs = uuid4(), uuid4()
    own.committed(mine)
    assert not own.came_back(delivery(theirs))
    assert not own.came_back(Msg(None, subject="conversation.updated"))  # type: ignore[arg-type]
    assert own.came_back(delivery(mine))
    assert not own.came_back(delivery(mine))  # redelivered: applied (a no-op) after all


def test_only_the_newest_ids_are_remembered() -> None:
    own = OwnEvents(limit=2)
    first, second, third = uuid4(), uuid4(), uuid4()
    for event_id in (first, second, third):
        own.committed(event_id)
    assert not own.came_back(delivery(first))
    assert own.came_back(delivery(second))
    assert own.came_back(delivery(third))
