"""Everything a gateway process holds, built once at start-up."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from chatbus_contracts import subjects
from chatbus_contracts.chunks import REPLY_CHUNK_ADAPTER
from chatbus_contracts.streams import BUDGETS
from chatbus_runtime.bus import Bucket, create_broker
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from .auth import ApiKeyVerifier, Authenticator, TokenVerifier
from .conversations import ConversationClient
from .drain import Drain
from .embeddings import EmbeddingsClient
from .limits import RateLimiter
from .live import UserSockets
from .records import TurnRecords
from .replies import ReplyRouter
from .resume import Resumer
from .settings import GatewaySettings
from .turns import TurnAcceptor


@dataclass
class GatewayState:
    """The broker, the reply router and the objects built on them."""

    settings: GatewaySettings
    gateway_id: str
    broker: NatsBroker
    router: ReplyRouter
    authenticator: Authenticator
    conversations: ConversationClient
    embeddings: EmbeddingsClient
    limiter: RateLimiter
    acceptor: TurnAcceptor
    records: TurnRecords
    resumer: Resumer
    sockets: UserSockets
    budgets: Bucket
    tracer: Tracer
    drain: Drain = field(default_factory=Drain)  # set off by SIGTERM (drain.py)


def build_state(settings: GatewaySettings, tracer_provider: TracerProvider) -> GatewayState:
    """Wire the gateway: one chunk subscription for this process, clients on the broker."""
    gateway_id = secrets.token_hex(6)
    router = ReplyRouter()
    broker = create_broker(
        settings,
        service_name="gateway",
        tracer_provider=tracer_provider,
        on_reconnect=router.reconnected,
    )

    sockets = UserSockets()
    conversations = ConversationClient(broker, settings.query_timeout_seconds)
    limiter = RateLimiter(broker, settings.rate_limits)
    records = TurnRecords(broker)
    return GatewayState(
        settings=settings,
        gateway_id=gateway_id,
        broker=broker,
        router=router,
        authenticator=Authenticator(
            TokenVerifier(settings.jwt_secret.get_secret_value(), settings.jwt_algorithm),
            ApiKeyVerifier(broker),
        ),
        conversations=conversations,
        embeddings=EmbeddingsClient(broker, settings.embeddings_timeout_seconds),
        limiter=limiter,
        acceptor=TurnAcceptor(
            broker,
            router,
            conversations,
            records,
            limiter,
            gateway_id=gateway_id,
            max_content_bytes=settings.max_content_bytes,
            publish_timeout_seconds=settings.publish_timeout_seconds,
        ),
        records=records,
        resumer=Resumer(broker, records, conversations),
        sockets=sockets,
        budgets=Bucket(broker, BUDGETS),
        tracer=tracer_provider.get_tracer("chatbus.gateway"),
    )


async def listen(state: GatewayState) -> None:
    """After the broker connects: every chunk meant for this gateway to the reply router,
    every `conversation.*` event to its user's open sockets.

    Plain NATS subscriptions, without FastStream's per-message middleware, span and
    dependency resolution: a chunk per token, and two conversation events for each new
    conversation to every gateway (through FastStream, ~1 ms of CPU each, measured).
    """

    async def on_chunk(msg: Msg) -> None:
        state.router.dispatch(REPLY_CHUNK_ADAPTER.validate_json(msg.data))

    async def on_conversation_event(msg: Msg) -> None:
        await state.sockets.push(msg.subject, msg.data)

    subject = subjects.chat_chunks_gateway_wildcard(state.gateway_id)
    await state.broker.connection.subscribe(subject, cb=on_chunk)
    await state.broker.connection.subscribe(
        subjects.CONVERSATION_EVENTS_ALL, cb=on_conversation_event
    )
