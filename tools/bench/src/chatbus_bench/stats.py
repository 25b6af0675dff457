"""Percentiles and the added latency of chatbus over calling the provider directly.

The two arms are measured on different turns, so their samples are not paired: the
added latency at a percentile is the difference of the two arms' percentiles
(`p99(chatbus) - p99(direct)`), not a percentile of per-turn differences.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

PERCENTILES: tuple[int, ...] = (50, 90, 99)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The `pct` percentile of `values` by linear interpolation (numpy's default); None if empty.

    `values` need not be sorted.
    """
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """Count, mean, max and the reported percentiles of one metric (milliseconds)."""

    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None

    def at(self, pct: int) -> float | None:
        """The value at one of `PERCENTILES`."""
        value: float | None = getattr(self, f"p{pct}")
        return value

    def to_json(self) -> dict[str, Any]:
        """Rounded to microseconds, for the results file."""
        return {key: _round(value) for key, value in asdict(self).items()}


def summarize(values: Iterable[float]) -> Summary:
    """A `Summary` of `values` (an empty one when there are none)."""
    data = list(values)
    if not data:
        return Summary(0, None, None, None, None, None)
    return Summary(
        count=len(data),
        mean=sum(data) / len(data),
        p50=percentile(data, 50),
        p90=percentile(data, 90),
        p99=percentile(data, 99),
        max=max(data),
    )


def added(chatbus: Summary, direct: Summary) -> dict[str, float | None]:
    """Per percentile, `chatbus - direct` (None where either arm has no samples)."""
    result: dict[str, float | None] = {}
    for pct in PERCENTILES:
        ours, theirs = chatbus.at(pct), direct.at(pct)
        result[f"p{pct}"] = None if ours is None or theirs is None else ours - theirs
    return result


def rounded(values: dict[str, float | None]) -> dict[str, float | None]:
    """`values` rounded to microseconds (in milliseconds), for the results file."""
    return {key: _round(value) for key, value in values.items()}


def rate(count: float, seconds: float) -> float:
    """`count / seconds`, 0 for an empty interval."""
    return count / seconds if seconds > 0 else 0.0


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value
