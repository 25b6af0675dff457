"""Keeps a JetStream message's ack deadline moving while a long generation runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from nats.aio.msg import Msg

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def in_progress_while(msg: Msg, interval_seconds: float) -> AsyncIterator[None]:
    """Send `in_progress` every `interval_seconds` until the block ends.

    The consumer's ack wait stays short, so a dead replica's turn is redelivered
    quickly, while a live replica's long answer is never taken away from it.
    """

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await msg.in_progress()
            except Exception:  # a lost beat only risks a redelivery, which is idempotent
                logger.warning("in_progress failed", exc_info=True)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
