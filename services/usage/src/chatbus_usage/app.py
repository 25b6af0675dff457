"""The usage service's whole wiring: a durable consumer of `usage.recorded`, usage queries."""

from __future__ import annotations

import logging
from pathlib import Path

from chatbus_contracts import subjects
from chatbus_contracts.events import UsageRecorded
from chatbus_contracts.streams import USAGE_CONSUMER
from chatbus_contracts.usage import UsageQuery, UsageSummary
from chatbus_runtime.bus import create_broker, start_broker, stop_broker
from chatbus_runtime.consumers import consume
from chatbus_runtime.database import create_engine, upgrade_schema
from chatbus_runtime.rpc import replies_to
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import TracerProvider

from .ledger import Ledger
from .models import SCHEMA
from .settings import UsageSettings
from .summary import summarise_usage
from .tallies import Tallies

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


class UsageService:
    """Owns the token and cost ledger."""

    def __init__(self, settings: UsageSettings, tracer_provider: TracerProvider) -> None:
        self.settings = settings
        self.broker: NatsBroker = create_broker(
            settings, service_name="usage", tracer_provider=tracer_provider
        )
        self.engine = create_engine(settings.database_url)
        self.ledger = Ledger(self.engine)
        ledger = self.ledger
        tallies = Tallies(self.broker)

        async def on_usage_recorded(msg: Msg) -> None:
            event = UsageRecorded.model_validate_json(msg.data)
            if await ledger.record(event):
                await tallies.add(event)

        consume(self.broker, USAGE_CONSUMER, on_usage_recorded, batch_size=16)

        @replies_to(
            self.broker, subjects.USAGE_QUERY_SUMMARY, UsageQuery, queue=subjects.USAGE_QUEUE
        )
        async def summary(query: UsageQuery) -> UsageSummary:
            return await summarise_usage(self.engine, query)

    async def start(self) -> None:
        """Migrate, connect, declare streams and the consumer, then start consuming."""
        if self.settings.migrate_on_start:
            await upgrade_schema(MIGRATIONS, self.settings.database_url, SCHEMA)
        await start_broker(self.broker)
        logger.info("usage service started")

    async def stop(self) -> None:
        """Stop consuming, then close the database pool."""
        await stop_broker(self.broker)
        await self.engine.dispose()
