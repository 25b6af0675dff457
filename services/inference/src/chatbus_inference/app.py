"""The inference service's whole wiring: the shared CHAT_REQUESTS consumer, stop, models."""

from __future__ import annotations

import contextlib
import logging

from chatbus_contracts import subjects
from chatbus_contracts.commands import GenerateReply, StopAcknowledged, StopGeneration
from chatbus_contracts.queries import ListModels, ModelList
from chatbus_contracts.streams import INFERENCE_CONSUMER
from chatbus_runtime.bus import create_broker, start_broker, stop_broker
from chatbus_runtime.consumers import consume
from chatbus_runtime.deadletters import dead_letter_office
from chatbus_runtime.handlers import CurrentMessage
from chatbus_runtime.pricing import install_price_overrides, load_price_table
from chatbus_runtime.rpc import replies_to
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from opentelemetry.sdk.trace import TracerProvider

from .budgets import BudgetBook
from .catalogue import load_catalogue
from .dead_letters import DeadLetteredTurns
from .memory import Memory
from .providers.registry import configured_providers
from .routing import ProviderRouter
from .running import Outcome
from .settings import InferenceSettings
from .titles import TitleWriter
from .turn import TurnRunner

logger = logging.getLogger(__name__)


class InferenceService:
    """Any number of replicas share the `inference` consumer; each runs up to N turns at once."""

    def __init__(self, settings: InferenceSettings, tracer_provider: TracerProvider) -> None:
        self.settings = settings
        install_price_overrides(settings.price_overrides)
        self.broker: NatsBroker = create_broker(
            settings, service_name="inference", tracer_provider=tracer_provider
        )
        self.router = ProviderRouter(
            configured_providers(settings),
            load_catalogue(settings.models_file),
            settings.default_model,
        )
        self.runner = TurnRunner(
            self.broker,
            self.router,
            history_timeout_seconds=settings.history_timeout_seconds,
            retry_policy=settings.retry_policy,
            timeouts=settings.stream_timeouts,
            titles=TitleWriter(
                self.broker,
                self.router,
                title_model=settings.title_model,
                timeout_seconds=settings.title_timeout_seconds,
            ),
            budgets=BudgetBook(
                self.broker,
                settings.budgets,
                reservation_seconds=settings.total_timeout_seconds + 60,
            ),
            memory=Memory(
                self.broker,
                top_k=settings.memory_top_k,
                min_similarity=settings.memory_min_similarity,
                timeout_seconds=settings.memory_timeout_seconds,
            ),
        )
        self._wire()

    def _wire(self) -> None:
        broker, runner, router = self.broker, self.runner, self.router
        # A request given up on still ends its turn for the client.
        dead_letter_office(broker).on_dead_letter(
            INFERENCE_CONSUMER, DeadLetteredTurns(broker).end_turn
        )

        self._handed_back: list[Msg] = []
        handed_back = self._handed_back

        async def on_request(msg: Msg) -> None:
            # An infrastructure failure propagates: the consumer redelivers the request
            # with backoff, and dead-letters it on the last delivery.
            outcome = await runner.run(GenerateReply.model_validate_json(msg.data), msg)
            if outcome is Outcome.ACK:
                await msg.ack()
            elif outcome is Outcome.HAND_BACK:
                handed_back.append(msg)  # nak'ed once this replica stopped pulling (stop)

        # max_workers bounds concurrent turns; when all are busy the consumer stops
        # fetching, so another replica pulls the next request.
        self._requests = consume(
            broker,
            INFERENCE_CONSUMER,
            on_request,
            max_workers=self.settings.max_concurrent_turns,
            manual_ack=True,
        )

        # Every replica hears every stop; only the one streaming the turn answers.
        @broker.subscriber(subjects.CHAT_CANCEL_ALL, no_reply=True)
        async def on_stop(command: StopGeneration, msg: CurrentMessage) -> None:
            if runner.stop(command.request_id, command.user_id) and msg.reply_to:
                await broker.publish(StopAcknowledged(request_id=command.request_id), msg.reply_to)

        @replies_to(broker, subjects.MODELS_QUERY_LIST, ListModels, queue=subjects.INFERENCE_QUEUE)
        async def list_models(query: ListModels) -> ModelList:
            return router.listing()

    async def start(self) -> None:
        """Connect, declare streams and the shared consumer, start pulling."""
        await start_broker(self.broker)
        load_price_table()  # part of the start-up heap `run_service` then freezes
        logger.info("inference started; default model %s", self.router.default_model)

    async def stop(self) -> None:
        """SIGTERM: stop pulling, let running turns finish for `drain_seconds`, hand back the rest.

        A fetch under way when pulling stops is abandoned (a request it was about to
        receive comes back after the ack wait). The handed-back requests are nak'ed only
        once the pull subscription is gone: its last pull request would otherwise take
        them straight back.
        """
        await self._requests.stop_fetching()
        await self.runner.drain(self.settings.drain_seconds)
        await self._requests.stop()
        await self.router.aclose()
        for msg in self._handed_back:
            with contextlib.suppress(NatsError):
                await msg.nak()  # at once: another replica runs it again
        # Acks and naks are fire-and-forget publishes: see them through before closing.
        with contextlib.suppress(NatsError, TimeoutError):
            await self.broker.connection.flush(timeout=5)
        await stop_broker(self.broker)
