"""REST routes for usage aggregates: the caller's own, and every user's for admins.

The usage service sums its ledger and answers over NATS request/reply. A window is
half-open, `[from, to)`, in UTC; it defaults to the current UTC month up to now.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Literal

from chatbus_contracts import subjects
from chatbus_contracts.common import utc_now
from chatbus_contracts.usage import UsageQuery, UsageSummary
from chatbus_runtime import rpc
from fastapi import APIRouter, Query, status
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

from .deps import CurrentAdmin, CurrentUser, State
from .errors import ApiError, unavailable

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["usage"])

UserGrouping = Literal["day", "model", "conversation"]
AdminGrouping = Literal["day", "model", "conversation", "user"]
_BOUND = "ISO 8601 date (its midnight) or datetime; without an offset it is UTC."


class UsageClient:
    """Asks the usage service for a summary."""

    def __init__(self, broker: NatsBroker, timeout_seconds: float) -> None:
        self._broker = broker
        self._timeout = timeout_seconds

    async def summary(self, query: UsageQuery) -> UsageSummary:
        """The usage service's answer; `TimeoutError` or a NATS error if it gave none."""
        return await rpc.ask(
            self._broker,
            subjects.USAGE_QUERY_SUMMARY,
            query,
            UsageSummary,
            timeout_seconds=self._timeout,
        )


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        "invalid_request",
        f"{field}: {message}",
        fields=[{"field": field, "message": message}],
    )


def _instant(text: str, field: str) -> datetime:
    """An ISO date (its midnight) or datetime, as an aware UTC datetime."""
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _invalid(field, "not an ISO 8601 date or datetime") from None


def _window(start_text: str | None, end_text: str | None) -> tuple[datetime, datetime]:
    """`[from, to)`: by default from the first day of the current UTC month up to now."""
    now = utc_now()
    end = now if end_text is None else _instant(end_text, "to")
    if start_text is None:
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        start = _instant(start_text, "from")
    if start >= end:
        raise _invalid("from", "must be before to")
    return start, end


@contextmanager
def _answers() -> Iterator[None]:
    """Map the usage service's silence to a 503."""
    try:
        yield
    except (NatsError, TimeoutError) as error:
        raise unavailable() from error


async def _summary(state: State, query: UsageQuery) -> UsageSummary:
    client = UsageClient(state.broker, state.settings.query_timeout_seconds)
    with _answers():
        return await client.summary(query)


@router.get("/usage", response_model=UsageSummary)
async def get_usage(
    user_id: CurrentUser,
    state: State,
    start: Annotated[str | None, Query(alias="from", max_length=64, description=_BOUND)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=64, description=_BOUND)] = None,
    group_by: UserGrouping | None = None,
) -> UsageSummary:
    """The caller's calls, tokens and cost in `[from, to)`, optionally grouped."""
    window_start, window_end = _window(start, end)
    query = UsageQuery(user_id=user_id, start=window_start, end=window_end, group_by=group_by)
    return await _summary(state, query)


@router.get("/admin/usage", response_model=UsageSummary)
async def get_admin_usage(
    admin: CurrentAdmin,
    state: State,
    user_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    start: Annotated[str | None, Query(alias="from", max_length=64, description=_BOUND)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=64, description=_BOUND)] = None,
    group_by: AdminGrouping | None = None,
) -> UsageSummary:
    """Every user's usage (or one user's) in `[from, to)`; admins only."""
    window_start, window_end = _window(start, end)
    query = UsageQuery(user_id=user_id, start=window_start, end=window_end, group_by=group_by)
    logger.info("admin %s read usage of %s", admin.user_id, user_id or "every user")
    return await _summary(state, query)
