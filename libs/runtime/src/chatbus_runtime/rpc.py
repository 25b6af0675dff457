"""Core NATS request/reply between services (queries and commands), through nats-py.

`request` asks and returns the reply's body, `ask` the reply as the answer's model;
`replies_to` makes a coroutine answer a subject in a queue group, from `start_broker`
until `stop_broker`. Bodies are the JSON of the contracts' models, the trace context
travels in the headers, and each answer runs in a `<subject> process` span (as
FastStream names it). A request that is not the expected model, or whose handler
raises, is answered at once with an error in the headers NATS services use
(`Nats-Service-Error-Code`: 400 or 500, and `Nats-Service-Error`), which `request` raises
as `NoAnswer`: the asker fails now instead of waiting for its timeout. `ask` raises a
reply that is not the answer's model as `NoAnswer` too (502).

Why not FastStream's subscribers and `broker.request`: measured with py-spy at a steady
40 turns/s, FastStream's decoding, dependency injection and middlewares took ~1 ms of
the conversation service's CPU per generated-title command around a 0.6 ms handler,
and `broker.request` ~0.5 ms of inference's (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from .registry import (
    STOP_GRACE_SECONDS,
    TRACE_CONTEXT,
    BrokerRegistry,
    Workers,
    handling_span,
)

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=BaseModel)
AnswerT = TypeVar("AnswerT", bound=BaseModel)
Handler = Callable[[RequestT], Awaitable[BaseModel]]

ERROR_CODE_HEADER = "Nats-Service-Error-Code"
ERROR_HEADER = "Nats-Service-Error"
BAD_ANSWER_CODE = "502"  # `ask`: the reply is not the answer asked for


class NoAnswer(NatsError):
    """The responder could not answer: the request was not valid (400) or its handler
    failed (500); or, from `ask`, its reply was not the answer asked for (502). A NATS
    error, so askers treat it as they treat a responder they could not reach."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description


async def request(
    broker: NatsBroker, subject: str, body: BaseModel, *, timeout_seconds: float
) -> bytes:
    """Send `body` to whoever answers `subject`; the reply's body.

    Raises `TimeoutError` without an answer in time, a NATS error when it cannot be
    asked (`NoRespondersError`) or the responder could not answer (`NoAnswer`).
    """
    headers = {"content-type": "application/json"}
    TRACE_CONTEXT.inject(headers)
    reply = await broker.connection.request(
        subject, body.model_dump_json().encode(), timeout=timeout_seconds, headers=headers
    )
    answered = reply.headers or {}
    if ERROR_CODE_HEADER in answered:
        raise NoAnswer(answered[ERROR_CODE_HEADER], answered.get(ERROR_HEADER, ""))
    return reply.data


async def ask(
    broker: NatsBroker,
    subject: str,
    body: BaseModel,
    answer: type[AnswerT],
    *,
    timeout_seconds: float,
) -> AnswerT:
    """`request`, its reply read as `answer`.

    A reply that is not one (a responder of another version, a bug) is logged and raised
    as `NoAnswer` with code 502: the asker handles it like any responder that could not
    answer, instead of failing on a validation error of somebody else's making.
    """
    reply = await request(broker, subject, body, timeout_seconds=timeout_seconds)
    try:
        return answer.model_validate_json(reply)
    except ValidationError as error:
        # The fields only: the values can be users' messages.
        fields = sorted({".".join(map(str, problem["loc"])) for problem in error.errors()})
        logger.error("%s answered a %s with bad fields: %s", subject, answer.__name__, fields)
        raise NoAnswer(BAD_ANSWER_CODE, f"not a {answer.__name__}") from error


class Responder(Generic[RequestT]):
    """Answers the requests of one subject, up to `max_workers` at once."""

    def __init__(
        self,
        subject: str,
        request_type: type[RequestT],
        handler: Handler[RequestT],
        *,
        queue: str,
        max_workers: int,
        tracer: trace.Tracer,
    ) -> None:
        self.subject = subject
        self._request_type = request_type
        self._handler = handler
        self._queue = queue
        self._workers = Workers(max_workers)
        self._tracer = tracer
        self._subscription: Subscription | None = None
        self._connection: NatsClient | None = None
        self._stopped = False

    async def start(self, broker: NatsBroker) -> None:
        """Subscribe in the queue group."""
        self._connection = broker.connection
        self._subscription = await self._connection.subscribe(
            self.subject, queue=self._queue, cb=self._received
        )

    async def stop(self) -> None:
        """Take no more requests; answer those this process received already, then let
        the answers under way finish (`STOP_GRACE_SECONDS` for each step).

        Requests still waiting when the first step runs out get no answer (their askers
        time out).
        """
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            with contextlib.suppress(NatsError, TimeoutError):
                drained = subscription.drain()  # type: ignore[no-untyped-call]
                await asyncio.wait_for(drained, STOP_GRACE_SECONDS)
        self._stopped = True
        await self._workers.finish(STOP_GRACE_SECONDS)

    async def _received(self, message: Msg) -> None:
        # nats-py awaits this before handing over the subscription's next message: with
        # every worker busy, requests wait in the subscription (as with FastStream).
        await self._workers.reserve()
        if self._stopped:  # a drain that ran out of time: nobody would wait for it
            self._workers.release()
            return
        self._workers.run(self._answer(message))

    async def _answer(self, message: Msg) -> None:
        with handling_span(
            self._tracer, self.subject, message.headers, trace.SpanKind.SERVER
        ) as span:
            try:
                query = self._request_type.model_validate_json(message.data)
            except ValidationError as error:
                logger.warning("%s: not a %s: %s", self.subject, self._request_type.__name__, error)
                span.set_status(trace.StatusCode.ERROR, "not a valid request")
                await self._reply(
                    message, b"", _error("400", f"not a {self._request_type.__name__}")
                )
                return
            try:
                answer = (await self._handler(query)).model_dump_json().encode()
            except Exception as error:
                logger.exception("%s: no answer", self.subject)
                span.record_exception(error)
                span.set_status(trace.StatusCode.ERROR, type(error).__name__)
                await self._reply(message, b"", _error("500", type(error).__name__))
                return
            await self._reply(message, answer)

    async def _reply(
        self, message: Msg, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        if message.reply and self._connection is not None:
            with contextlib.suppress(NatsError):  # the asker times out
                # Not `message.respond`: it would send the request's headers back.
                await self._connection.publish(message.reply, body, headers=headers)


def _error(code: str, description: str) -> dict[str, str]:
    """The headers of an error reply (the description names no internals)."""
    return {ERROR_CODE_HEADER: code, ERROR_HEADER: description}


_responders: BrokerRegistry[Responder[Any]] = BrokerRegistry("chatbus.rpc")


def trace_responders(broker: NatsBroker, tracer_provider: trace.TracerProvider) -> None:
    """Give the responders of `broker` their tracer (`create_broker` does this once)."""
    _responders.trace(broker, tracer_provider)


def replies_to(
    broker: NatsBroker,
    subject: str,
    request_type: type[RequestT],
    *,
    queue: str,
    max_workers: int = 1,
) -> Callable[[Handler[RequestT]], Handler[RequestT]]:
    """Decorate the coroutine that answers `subject` (in queue group `queue`) with a model.

    Without `max_workers` > 1 one request is answered at a time: one that waits (for
    the events it must see, say) holds up the rest of its subject.
    """

    def register(handler: Handler[RequestT]) -> Handler[RequestT]:
        registry = _responders.of(broker)
        responder = Responder(
            subject,
            request_type,
            handler,
            queue=queue,
            max_workers=max_workers,
            tracer=registry.tracer,
        )
        registry.all.append(responder)
        return handler

    return register


async def start_responders(broker: NatsBroker) -> None:
    """Start answering every subject registered on `broker` (connected already); return
    once the server has the subscriptions."""
    responders = _responders.of(broker).all
    for responder in responders:
        await responder.start(broker)
    if responders:
        await broker.connection.flush()


async def stop_responders(broker: NatsBroker) -> None:
    """Stop every responder of `broker`, all at once."""
    await asyncio.gather(*(responder.stop() for responder in _responders.of(broker).all))
