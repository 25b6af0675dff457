"""Consumers pause through Postgres and NATS outages instead of spending deliveries.

A handler that fails because Postgres or NATS cannot be reached (`is_transient`) would
fail the same way on every delivery until the outage ends; nak'ed with backoff it would
be dead-lettered after about two minutes (`chatbus_runtime.redelivery`). Instead its
consumer (`chatbus_runtime.consumers`) holds such a message (`hold_through_outage`):

    wait 0.5 s, doubling to 10 s, and run the handler again, until it
        succeeds                  -> acked as usual (one delivery spent in all)
        fails for another reason  -> the usual nak with backoff, or dead letter
        the service stops         -> nak'ed without delay, for the next replica
    meanwhile `in_progress()` every third of the consumer's ack wait, so JetStream
    does not deliver it again (failures ignored: NATS may be the one that is down)

A held message keeps its consumer from fetching more, so the consumer pauses and
catches up afterwards. Each pause is logged once per consumer: a warning when it
starts, an info line when its last held message is released.

Only consumers that ack on success pause: every durable consumer except inference's,
which acks by hand (`manual_ack`). A turn that streamed to its client must not run
again inside the same delivery; its failures keep the nak-with-backoff path.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import asyncpg.exceptions as pg
import nats.errors
import nats.js.errors
import sqlalchemy.exc
from nats.aio.msg import Msg

logger = logging.getLogger(__name__)

PAUSE_FIRST_DELAY_SECONDS = 0.5
PAUSE_MAX_DELAY_SECONDS = 10.0

# Errors that say "cannot reach it now", not "this message is bad".
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,  # also asyncio's and nats-py's timeouts
    socket.gaierror,  # the host name does not resolve (yet)
    # Postgres: no connection, going down or coming up, out of connections, disk or
    # memory, a read-only standby after a failover.
    pg.PostgresConnectionError,
    pg.AdminShutdownError,
    pg.CrashShutdownError,
    pg.CannotConnectNowError,
    pg.TooManyConnectionsError,
    pg.DiskFullError,
    pg.OutOfMemoryError,
    pg.ReadOnlySQLTransactionError,
    # SQLAlchemy: a pool that cannot hand out a connection, or a lost one.
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
    # NATS: disconnected, reconnecting, closed, or JetStream/the service not answering.
    nats.errors.NoRespondersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EADDRNOTAVAIL,
    }
)
# asyncio's create_connection, when each address failed differently (Python 3.11).
_CONNECT_ATTEMPTS_FAILED = "Multiple exceptions: "


def is_transient(error: BaseException) -> bool:
    """Whether `error` says Postgres or NATS cannot be reached now, so a retry may succeed.

    Looks through what the error wraps: SQLAlchemy's `orig` and `raise ... from` causes.
    A group is transient when all its errors are.
    """
    if isinstance(error, BaseExceptionGroup):
        return all(is_transient(inner) for inner in error.exceptions)
    return any(_is_transient_itself(cause) for cause in _causes(error))


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, then what it wraps, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "orig", None)  # sqlalchemy.exc.StatementError
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__


def _is_transient_itself(error: BaseException) -> bool:
    if isinstance(error, _TRANSIENT_TYPES):
        return True
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, OSError):
        return error.errno in _NETWORK_ERRNOS or str(error).startswith(_CONNECT_ATTEMPTS_FAILED)
    return False


def pause_delays(
    first_seconds: float = PAUSE_FIRST_DELAY_SECONDS, max_seconds: float = PAUSE_MAX_DELAY_SECONDS
) -> Iterator[float]:
    """The waits before each new attempt of a held message: 0.5 s doubling to 10 s, forever."""
    delay = first_seconds
    while True:
        yield delay
        delay = min(delay * 2, max_seconds)


@dataclass
class _Pause:
    since: float
    held: int = 1


class Outages:
    """The consumers of one broker that hold messages through an outage, logged once each."""

    def __init__(self) -> None:
        self._pauses: dict[str, _Pause] = {}

    def paused(self) -> list[str]:
        """The consumers (`STREAM/consumer`) holding messages now."""
        return sorted(self._pauses)

    def hold(self, consumer: str, error: BaseException) -> None:
        """`consumer` holds one more message; the first one pauses it (a warning)."""
        pause = self._pauses.get(consumer)
        if pause is not None:
            pause.held += 1
            return
        self._pauses[consumer] = _Pause(since=time.monotonic())
        logger.warning(
            "consumer %s paused: %s: %s; its messages wait until Postgres and NATS answer",
            consumer,
            type(error).__name__,
            str(error)[:300],
        )

    def release(self, consumer: str, *, stopped: bool = False) -> None:
        """`consumer` let go of one message; the last one ends the pause (an info line)."""
        pause = self._pauses[consumer]
        pause.held -= 1
        if pause.held > 0:
            return
        del self._pauses[consumer]
        seconds = time.monotonic() - pause.since
        if stopped:
            logger.info("consumer %s stopped after %.1f s paused", consumer, seconds)
        else:
            logger.info("consumer %s resumed after %.1f s paused", consumer, seconds)


async def hold_through_outage(
    attempt: Callable[[], Awaitable[None]],
    error: Exception,
    *,
    held: list[Msg],
    ack_wait_seconds: float,
    stopping: asyncio.Event,
    outages: Outages,
) -> bool:
    """Run `attempt` again until it stops failing transiently (see the module's doc).

    `held` are the JetStream messages `attempt` handles, `error` its first transient
    failure. True once an attempt ran through; False when `stopping` was set first (the
    caller hands the messages back); a non-transient failure is raised.
    """
    metadata = held[0].metadata
    consumer = f"{metadata.stream}/{metadata.consumer}"
    outages.hold(consumer, error)
    stopped = True  # unless an attempt ends
    try:
        async with _kept_in_progress(held, ack_wait_seconds / 3):
            stopped = not await _retry(attempt, stopping)
    except asyncio.CancelledError:
        # The consumer's task is being cancelled (the service stops): hand the
        # messages back from a task of their own.
        _hand_back(held)
        raise
    except Exception:
        stopped = False  # it ended, on a failure of another kind
        raise
    finally:
        outages.release(consumer, stopped=stopped)
    return not stopped


async def _retry(attempt: Callable[[], Awaitable[None]], stopping: asyncio.Event) -> bool:
    """True once `attempt` runs through; False as soon as `stopping` is set."""
    for delay in pause_delays():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        if stopping.is_set():
            return False
        try:
            await attempt()
        except Exception as failure:
            if not is_transient(failure):
                raise
        else:
            return True
    raise AssertionError("unreachable: pause_delays() never ends")


@contextlib.asynccontextmanager
async def _kept_in_progress(messages: list[Msg], interval_seconds: float) -> AsyncIterator[None]:
    """Tell JetStream every `interval_seconds` that `messages` are still being worked on."""
    task = asyncio.create_task(_send_in_progress(messages, interval_seconds))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task])


async def _send_in_progress(messages: list[Msg], interval_seconds: float) -> None:
    while True:
        for message in messages:
            try:
                await message.in_progress()
            except Exception as error:  # NATS down, or the message settled meanwhile
                logger.debug("in_progress failed: %r", error)
        await asyncio.sleep(interval_seconds)


# Naks scheduled while the held messages' task is being cancelled, kept until sent.
_handing_back: set[asyncio.Task[None]] = set()


def _hand_back(messages: list[Msg]) -> None:
    """Nak `messages` at once, in a task of its own: the caller may be cancelled."""
    task = asyncio.get_running_loop().create_task(_nak_all(messages))
    _handing_back.add(task)
    task.add_done_callback(_handing_back.discard)


async def _nak_all(messages: list[Msg]) -> None:
    for message in messages:
        if message.is_acked:
            continue
        try:
            await message.nak()
        except Exception as error:  # left unacked: JetStream delivers it after the ack wait
            logger.debug("nak failed: %r", error)
