from __future__ import annotations

import errno
import itertools
import logging
import socket

import asyncpg.exceptions as pg
import nats.errors
import nats.js.errors
import pytest
import sqlalchemy.exc
from chatbus_contracts.events import UsageRecorded
from chatbus_contracts.streams import USAGE_CONSUMER
from chatbus_runtime.outages import (
    PAUSE_MAX_DELAY_SECONDS,
    Outages,
    is_transient,
    pause_delays,
)
from chatbus_runtime.redelivery import MAX_DELAY_SECONDS, RedeliveryPolicy, redelivery_delay
from chatbus_runtime.settings import ServiceSettings
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError


def test_redelivery_backs_off_exponentially_up_to_a_cap() -> None:
    delays = [redelivery_delay(n) for n in range(1, 10)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == MAX_DELAY_SECONDS
    assert delays == sorted(delays)


def test_the_policy_comes_from_the_settings_and_defaults_to_each_consumers_limit() -> None:
    default = RedeliveryPolicy.from_settings(ServiceSettings())
    assert default.max_deliver_of(USAGE_CONSUMER) == USAGE_CONSUMER.max_deliver == 10
    assert [default.delay(n) for n in (1, 2, 7, 9)] == [0.5, 1.0, 30.0, 30.0]

    fast = RedeliveryPolicy.from_settings(
        ServiceSettings(
            max_deliver=3, redelivery_first_delay_seconds=0.05, redelivery_max_delay_seconds=0.1
        )
    )
    assert fast.max_deliver_of(USAGE_CONSUMER) == 3
    assert [fast.delay(n) for n in (1, 2, 3)] == [0.05, 0.1, 0.1]


# --- outages: which failures pause a consumer, and how -------------------------------------


def _wrapped_by_sqlalchemy(cause: BaseException, *, invalidated: bool = False) -> DBAPIError:
    """What SQLAlchemy's asyncpg dialect raises: its DBAPI error, caused by asyncpg's."""
    adapted = Exception(str(cause))
    adapted.__cause__ = cause
    return DBAPIError("SELECT 1", {}, adapted, connection_invalidated=invalidated)


def _caused_by(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


TRANSIENT: list[BaseException] = [
    ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"),
    OSError(
        "Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432), "
        "[Errno 99] Cannot assign requested address"
    ),
    OSError(errno.EHOSTUNREACH, "No route to host"),
    socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    TimeoutError(),
    pg.CannotConnectNowError("the database system is starting up"),
    pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    pg.TooManyConnectionsError("sorry, too many clients already"),
    # Postgres stopped under a running query, as SQLAlchemy reports it.
    _wrapped_by_sqlalchemy(
        _caused_by(
            pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
            pg.AdminShutdownError("terminating connection due to administrator command"),
        ),
        invalidated=True,
    ),
    _wrapped_by_sqlalchemy(pg.AdminShutdownError("terminating connection")),
    DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
    sqlalchemy.exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
    nats.errors.TimeoutError(),
    nats.errors.NoRespondersError(),
    nats.errors.ConnectionClosedError(),
    nats.errors.ConnectionReconnectingError(),
    nats.errors.OutboundBufferLimitError(),
    nats.js.errors.ServiceUnavailableError(code=503, description="JetStream unavailable"),
    _caused_by(RuntimeError("could not record the event"), ConnectionResetError()),
    ExceptionGroup("both down", [ConnectionRefusedError(), nats.errors.NoServersError()]),
]

NOT_TRANSIENT: list[BaseException] = [
    ValueError("not a uuid"),
    KeyError("usage.unknown"),
    _wrapped_by_sqlalchemy(pg.UniqueViolationError("duplicate key value")),
    sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("check constraint")),
    pg.QueryCanceledError("canceling statement due to statement timeout"),
    pg.InterfaceError("cannot perform operation: another operation is in progress"),
    FileNotFoundError(errno.ENOENT, "No such file or directory"),
    PermissionError(errno.EACCES, "Permission denied"),
    nats.errors.MaxPayloadError(),
    nats.js.errors.NotFoundError(code=404, description="stream not found"),
    ExceptionGroup("mixed", [ConnectionRefusedError(), ValueError("bad")]),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_failures_to_reach_postgres_or_nats_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize("error", NOT_TRANSIENT, ids=lambda e: type(e).__name__)
def test_failures_of_the_message_itself_are_not(error: BaseException) -> None:
    assert not is_transient(error)


def test_a_validation_error_is_not_transient() -> None:
    with pytest.raises(ValidationError) as raised:
        UsageRecorded.model_validate_json(b'{"event_id": "not a uuid"}')
    assert not is_transient(raised.value)


def test_a_held_message_is_tried_again_after_half_a_second_doubling_to_ten() -> None:
    assert list(itertools.islice(pause_delays(), 7)) == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert PAUSE_MAX_DELAY_SECONDS == 10.0


def test_each_pause_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chatbus_runtime.outages")
    outages = Outages()
    down = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
    for _ in range(3):  # three messages of one fetch, all failing
        outages.hold("EVENTS/usage", down)
    outages.hold("EVENTS/conversation", down)
    assert outages.paused() == ["EVENTS/conversation", "EVENTS/usage"]
    outages.release("EVENTS/usage")
    outages.release("EVENTS/usage")
    assert outages.paused() == ["EVENTS/conversation", "EVENTS/usage"]
    outages.release("EVENTS/usage")
    outages.release("EVENTS/conversation", stopped=True)
    assert outages.paused() == []

    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == [
        logging.WARNING,
        logging.WARNING,
        logging.INFO,
        logging.INFO,
    ]
    assert lines[0][1].startswith("consumer EVENTS/usage paused: ConnectionRefusedError: ")
    assert lines[2][1].startswith("consumer EVENTS/usage resumed after ")
    assert lines[3][1].startswith("consumer EVENTS/conversation stopped after ")
