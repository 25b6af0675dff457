"""Per-user tokens of the day in the `rate_limits` bucket, read by the gateways' limiter.

Only a call that made a new ledger row is added, so a redelivered event is never
counted twice. A crash between the ledger commit and the addition undercounts that
one call (the ledger itself stays exact).
"""

from __future__ import annotations

from datetime import UTC

from chatbus_contracts.events import UsageRecorded
from chatbus_contracts.limits import tokens_day_key
from chatbus_contracts.streams import RATE_LIMITS
from chatbus_runtime.kvcas import add_to_counter
from faststream.nats import NatsBroker
from nats.js.kv import KeyValue


class DailyTokens:
    """Adds billed tokens (prompt + completion) to the user's counter of that UTC day."""

    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker
        self._bucket: KeyValue | None = None

    async def add(self, event: UsageRecorded) -> None:
        tokens = event.usage.prompt_tokens + event.usage.completion_tokens
        if tokens == 0:
            return
        if self._bucket is None:
            self._bucket = await self._broker.connection.jetstream().key_value(RATE_LIMITS.name)
        day = event.occurred_at.astimezone(UTC).date()
        await add_to_counter(self._bucket, tokens_day_key(event.user_id, day), tokens)
