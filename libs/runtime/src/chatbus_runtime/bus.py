"""NATS bootstrapping: the broker, the streams and consumers from contracts, event publishing."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from chatbus_contracts.events import Event
from chatbus_contracts.streams import (
    ALL_BUCKETS,
    ALL_STREAMS,
    CHAT_REQUESTS,
    EVENTS,
    BucketSpec,
    ConsumerSpec,
    StreamSpec,
)
from faststream.nats import NatsBroker
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from nats.js import JetStreamContext, api
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel

from .consumers import registered_specs, start_consumers, stop_consumers, trace_consumers
from .deadletters import dead_letter_office, open_dead_letter_office
from .redelivery import RedeliveryPolicy
from .registry import TRACE_CONTEXT
from .rpc import start_responders, stop_responders, trace_responders
from .settings import ServiceSettings

logger = logging.getLogger(__name__)

# A JetStream publish waits this long for its PubAck before it counts as failed.
PUBLISH_TIMEOUT_SECONDS = 5.0
_RETENTION = {
    "limits": api.RetentionPolicy.LIMITS,
    "workqueue": api.RetentionPolicy.WORK_QUEUE,
    "interest": api.RetentionPolicy.INTEREST,
}
_STORAGE = {"file": api.StorageType.FILE, "memory": api.StorageType.MEMORY}


@dataclass(frozen=True)
class StreamLayout:
    """What the settings change in the streams and buckets declared from contracts."""

    replicas: int = 1
    requests_duplicate_window_seconds: float = CHAT_REQUESTS.duplicate_window_seconds

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> StreamLayout:
        return cls(settings.stream_replicas, settings.requests_duplicate_window_seconds)

    def stream_config(self, spec: StreamSpec) -> api.StreamConfig:
        """The nats-py config of a stream declared in contracts."""
        window = spec.duplicate_window_seconds
        if spec.name == CHAT_REQUESTS.name:
            window = self.requests_duplicate_window_seconds
        return api.StreamConfig(
            name=spec.name,
            description=spec.description,
            subjects=list(spec.subjects),
            retention=_RETENTION[spec.retention],
            storage=_STORAGE[spec.storage],
            max_age=spec.max_age_seconds,
            duplicate_window=window,
            num_replicas=self.replicas,
            allow_direct=self.direct_gets(spec),
        )

    def direct_gets(self, spec: StreamSpec) -> bool:
        """Whether the stream answers direct gets: if its contract asks and it has one
        replica (every replica answers them, a follower possibly a moment behind)."""
        return spec.allow_direct and self.replicas == 1


# The layout each broker declares with (set by `create_broker`).
_layouts: weakref.WeakKeyDictionary[NatsBroker, StreamLayout] = weakref.WeakKeyDictionary()


def create_broker(
    settings: ServiceSettings,
    *,
    service_name: str,
    tracer_provider: TracerProvider,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
) -> NatsBroker:
    """A broker that reconnects forever and carries trace context in message headers.

    `on_reconnect` runs each time the connection is back after a disconnect (its
    subscriptions renewed, what was buffered meanwhile sent).

    Its durable consumers (`chatbus_runtime.consumers`) redeliver a handler's failure
    with backoff and dead-letter it on the consumer's last delivery, as the settings'
    redelivery policy says (`dead_letter_office(broker)`).
    """
    broker = NatsBroker(
        settings.nats_url,
        name=f"chatbus-{service_name}",
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        reconnected_cb=on_reconnect,
        middlewares=[NatsTelemetryMiddleware(tracer_provider=tracer_provider)],
        logger=logging.getLogger(f"chatbus.{service_name}.broker"),
        log_level=logging.DEBUG,
    )
    open_dead_letter_office(broker, RedeliveryPolicy.from_settings(settings))
    trace_consumers(broker, tracer_provider)
    trace_responders(broker, tracer_provider)
    _layouts[broker] = StreamLayout.from_settings(settings)
    return broker


def direct_gets(broker: NatsBroker, spec: StreamSpec) -> bool:
    """Whether `broker` reads the stream of `spec` with direct gets (`StreamLayout`)."""
    return _layouts.get(broker, StreamLayout()).direct_gets(spec)


async def declare_streams(broker: NatsBroker, specs: tuple[StreamSpec, ...] = ALL_STREAMS) -> None:
    """Create or update every stream; safe to run from every replica at every start."""
    js = broker.connection.jetstream()
    for spec in specs:
        config = _layouts.get(broker, StreamLayout()).stream_config(spec)
        try:
            await js.update_stream(config)
        except NotFoundError:
            await js.add_stream(config)


async def declare_buckets(broker: NatsBroker, specs: tuple[BucketSpec, ...] = ALL_BUCKETS) -> None:
    """Create every key-value bucket that does not exist yet."""
    js = broker.connection.jetstream()
    for spec in specs:
        await ensure_bucket(js, spec, _layouts.get(broker, StreamLayout()).replicas)


class Bucket:
    """A key-value bucket on the broker's connection, looked up once, on first use."""

    def __init__(self, broker: NatsBroker, spec: BucketSpec) -> None:
        self._broker = broker
        self._spec = spec
        self._kv: KeyValue | None = None

    async def kv(self) -> KeyValue:
        """The bucket (declared at start-up by `start_broker`)."""
        if self._kv is None:
            self._kv = await self._broker.connection.jetstream().key_value(self._spec.name)
        return self._kv

    async def value(self, key: str) -> bytes | None:
        """The value under `key`; None when there is none (never written, deleted, expired)."""
        try:
            entry = await (await self.kv()).get(key)
        except KeyNotFoundError:
            return None
        return entry.value or b""


async def ensure_bucket(js: JetStreamContext, spec: BucketSpec, replicas: int = 1) -> KeyValue:
    """The bucket of `spec`, created first (with `replicas`) if it does not exist.

    Reads are direct gets (`allow_direct`, as nats.go and the `nats` CLI create buckets;
    nats-py does not by default): the server answers them without the JetStream API's
    JSON and base64, 0.1 to 0.2 ms less per read. A bucket made before chatbus asked for
    them is switched over.
    """
    stream = f"KV_{spec.name}"
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return await js.create_key_value(
            api.KeyValueConfig(
                bucket=spec.name,
                description=spec.description,
                ttl=spec.ttl_seconds,
                history=1,
                storage=api.StorageType.FILE,
                replicas=replicas,
                direct=True,
            )
        )
    if not info.config.allow_direct:
        await js.update_stream(replace(info.config, allow_direct=True))
    return await js.key_value(spec.name)


def consumer_config(spec: ConsumerSpec, *, max_deliver: int | None = None) -> api.ConsumerConfig:
    """The nats-py config of a durable pull consumer declared in contracts.

    `max_deliver` overrides the spec's delivery limit (`CHATBUS_MAX_DELIVER`).
    """
    return api.ConsumerConfig(
        durable_name=spec.durable,
        name=spec.durable,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=spec.ack_wait_seconds,
        max_deliver=spec.max_deliver if max_deliver is None else max_deliver,
        filter_subjects=list(spec.filter_subjects),
        max_ack_pending=1000,
    )


async def declare_consumer(
    broker: NatsBroker, spec: ConsumerSpec, *, max_deliver: int | None = None
) -> api.ConsumerInfo:
    """Create the durable consumer, or bring an existing one in line with `spec`."""
    js = broker.connection.jetstream()
    config = consumer_config(spec, max_deliver=max_deliver)
    info: api.ConsumerInfo = await js.add_consumer(spec.stream.name, config=config)
    return info


async def start_broker(broker: NatsBroker, *consumers: ConsumerSpec) -> None:
    """Connect, declare every stream and the durable consumers, then start handlers
    (FastStream's subscribers, the responders of `chatbus_runtime.rpc`, then the durable
    consumers of `chatbus_runtime.consumers`).

    Declared: the given consumers and every one registered with `consume` or
    `consume_batches`. They get the delivery limit of the settings' redelivery policy,
    and this process listens for their max-deliveries advisories
    (`chatbus_runtime.deadletters`).
    """
    await broker.connect()
    await declare_streams(broker)
    await declare_buckets(broker)
    office = dead_letter_office(broker)
    for consumer in dict.fromkeys((*consumers, *registered_specs(broker))):
        info = await declare_consumer(
            broker, consumer, max_deliver=office.policy.max_deliver_of(consumer)
        )
        office.track(consumer, info.config.max_deliver or 0)
    await office.listen()
    await broker.start()
    await start_responders(broker)
    await start_consumers(broker)


async def stop_broker(broker: NatsBroker) -> None:
    """Stop the durable consumers and the responders (what they handle finishes first),
    then the broker."""
    await asyncio.gather(stop_consumers(broker), stop_responders(broker))
    await broker.stop()


def event_headers(event: Event) -> dict[str, str]:
    """Headers of an event publish; `Nats-Msg-Id` lets JetStream drop a republished duplicate."""
    return {"Nats-Msg-Id": str(event.event_id)}


async def publish_event(broker: NatsBroker, event: Event) -> api.PubAck:
    """Publish a domain event to the EVENTS stream and wait for its PubAck."""
    return await publish_to_stream(
        broker,
        event.subject,
        event,
        stream=EVENTS.name,
        headers=event_headers(event),
        ack_timeout_seconds=PUBLISH_TIMEOUT_SECONDS,
    )


async def publish_to_stream(
    broker: NatsBroker,
    subject: str,
    body: BaseModel,
    *,
    stream: str,
    headers: dict[str, str],
    ack_timeout_seconds: float,
) -> api.PubAck:
    """Publish `body` as JSON to a JetStream stream and wait for its PubAck.

    Straight through nats-py, with the current trace context in the headers (as
    FastStream's telemetry middleware would put it): FastStream's publish path cost
    ~0.085 ms more CPU and ~0.1 ms more time per publish (measured, docs/decisions.md).
    """
    headers = dict(headers)
    TRACE_CONTEXT.inject(headers)
    js = broker.connection.jetstream()
    return await js.publish(
        subject,
        body.model_dump_json().encode(),
        timeout=ack_timeout_seconds,
        stream=stream,
        headers=headers,
    )
