"""Work around nats-py 2.16 raising a bare `asyncio.TimeoutError` from a batch fetch.

`PullSubscription.fetch(batch>1)` times out with `asyncio.TimeoutError` instead of
`nats.errors.TimeoutError`; FastStream's pull loop only expects the latter, so each
idle fetch would crash and restart the consumer task. Re-raising the nats error
keeps the loop quiet. Remove when nats-py raises its own error again.
"""

from __future__ import annotations

from typing import Any

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.client import JetStreamContext

_original_fetch = JetStreamContext.PullSubscription.fetch


async def _fetch(self: JetStreamContext.PullSubscription, *args: Any, **kwargs: Any) -> Any:
    try:
        return await _original_fetch(self, *args, **kwargs)
    except NatsTimeoutError:
        raise
    except TimeoutError as error:
        raise NatsTimeoutError from error


def install() -> None:
    """Patch `PullSubscription.fetch` once per process."""
    if JetStreamContext.PullSubscription.fetch is not _fetch:
        JetStreamContext.PullSubscription.fetch = _fetch  # type: ignore[method-assign]
