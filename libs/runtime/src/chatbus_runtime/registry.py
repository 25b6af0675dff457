"""What a service registers on its broker before it starts (durable consumers, responders),
the workers their handlers run on, and the span each handling runs in."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Coroutine, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from faststream.nats import NatsBroker
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

T = TypeVar("T")

# At a stop, handlers still running get this long before they are cancelled (consumers'
# and responders' alike; a responder gives its received requests as long again first).
STOP_GRACE_SECONDS = 5.0

# The W3C trace context in NATS headers (`traceparent`), as FastStream carries it.
TRACE_CONTEXT = TraceContextTextMapPropagator()


@dataclass
class Registered(Generic[T]):
    """The handlers registered on one broker and the tracer of their spans."""

    tracer: trace.Tracer
    all: list[T] = field(default_factory=list)


class BrokerRegistry(Generic[T]):
    """Handlers of one kind, per broker (a process may hold several brokers, as tests do)."""

    def __init__(self, tracer_name: str) -> None:
        self._tracer_name = tracer_name
        self._by_broker: weakref.WeakKeyDictionary[NatsBroker, Registered[T]] = (
            weakref.WeakKeyDictionary()
        )

    def trace(self, broker: NatsBroker, tracer_provider: trace.TracerProvider) -> None:
        """Spans of the handlers registered on `broker` from now on go to `tracer_provider`
        (`create_broker` calls this before anything is registered)."""
        tracer = tracer_provider.get_tracer(self._tracer_name)
        self._by_broker[broker] = Registered(tracer, self.of(broker).all)

    def of(self, broker: NatsBroker) -> Registered[T]:
        """What is registered on `broker` (with the global tracer if `trace` was not called)."""
        registered = self._by_broker.get(broker)
        if registered is None:
            registered = Registered(trace.get_tracer(self._tracer_name))
            self._by_broker[broker] = registered
        return registered


class Workers:
    """Up to `size` handler tasks at once; at a stop, waited for and then cancelled."""

    def __init__(self, size: int) -> None:
        self._free = asyncio.Semaphore(size)
        self._running: set[asyncio.Task[None]] = set()

    async def reserve(self) -> None:
        """Wait for a free worker (`run` or `release` hands it back)."""
        await self._free.acquire()

    def release(self) -> None:
        """Hand back a reserved worker that runs nothing."""
        self._free.release()

    def run(self, handling: Coroutine[Any, Any, None]) -> None:
        """Run `handling` on the reserved worker; the worker is free again when it ends."""
        task = asyncio.create_task(handling)
        self._running.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._free.release()

    async def finish(self, seconds: float) -> None:
        """Let the running handlers finish within `seconds`, then cancel what is left."""
        if not self._running:
            return
        _, late = await asyncio.wait(set(self._running), timeout=seconds)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)


def handling_span(
    tracer: trace.Tracer,
    subject: str,
    headers: Mapping[str, str] | None,
    kind: trace.SpanKind,
    attributes: Mapping[str, str | int] | None = None,
) -> AbstractContextManager[trace.Span]:
    """The `<subject> process` span (as FastStream names it) a handler runs in, a child of
    the trace context in the message's `headers`."""
    return tracer.start_as_current_span(
        f"{subject} process",
        context=TRACE_CONTEXT.extract(headers or {}),
        kind=kind,
        attributes={
            "messaging.system": "nats",
            "messaging.destination.name": subject,
            **(attributes or {}),
        },
    )
