"""Keys of the `rate_limits` bucket, shared by the gateway (reads) and usage service (writes).

User ids may hold characters a key may not, so keys use `common.user_key`.
"""

from __future__ import annotations

from datetime import date

from pydantic import Field

from .common import Model, user_key

REQUEST_WINDOW_SECONDS = 60.0


def request_window_key(user_id: str) -> str:
    """The user's current one-minute request window (`RequestWindow`)."""
    return f"requests.{user_key(user_id)}"


def tokens_day_key(user_id: str, day: date) -> str:
    """The user's tokens (prompt + completion) of one UTC day, as an integer."""
    return f"tokens.{day:%Y%m%d}.{user_key(user_id)}"


class RequestWindow(Model):
    """Requests admitted since `start` (epoch seconds); a window lasts one minute."""

    start: float
    count: int = Field(ge=0)
