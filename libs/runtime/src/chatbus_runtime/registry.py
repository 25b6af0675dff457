"""What a service registers on its broker before it starts (durable consumers, responders),
and how their handlers get to finish when it stops."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from faststream.nats import NatsBroker
from opentelemetry import trace

T = TypeVar("T")


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


async def finish_in_time(tasks: set[asyncio.Task[None]], seconds: float) -> None:
    """Let the handlers in `tasks` finish within `seconds`, then cancel what is left."""
    if not tasks:
        return
    _, late = await asyncio.wait(set(tasks), timeout=seconds)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late)
