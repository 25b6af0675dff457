"""Where a turn's time to first token goes: before the emulator got the request, and after.

Each measured turn carries a unique marker in its question; the emulator logs when each
request arrived (wall clock, same machine). So per turn:

    upstream_ms = emulator received - client sent     (chatbus: gateway, JetStream,
                                                       inference's history and events)
    after_ms    = TTFT - upstream_ms                  (the emulator's first token and the
                                                       way back: NATS, gateway, socket)

Differences between the arms say which half the added latency is in.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .samples import TurnSample
from .stats import added, rounded, summarize

_MARKER = re.compile(r"\[turn ([0-9a-f]{32})\]")


def marked(question: str) -> tuple[str, str]:
    """(marker id, the question with the marker appended)."""
    marker = uuid.uuid4().hex
    return marker, f"{question} [turn {marker}]"


def arrivals(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Marker id -> when the emulator received the request carrying it (Unix seconds)."""
    found: dict[str, float] = {}
    for record in records:
        match = _MARKER.search(json.dumps(record.get("body")))
        if match and isinstance(record.get("received_at"), int | float):
            found.setdefault(match[1], float(record["received_at"]))
    return found


def split(
    samples: Sequence[tuple[str, TurnSample]], received: Mapping[str, float]
) -> tuple[list[float], list[float]]:
    """(upstream_ms, after_ms) of the completed turns the emulator logged."""
    upstream: list[float] = []
    after: list[float] = []
    for marker, sample in samples:
        at = received.get(marker)
        if not sample.ok or at is None or sample.sent_at_unix is None or sample.ttft_ms is None:
            continue
        before_ms = (at - sample.sent_at_unix) * 1000
        upstream.append(before_ms)
        after.append(sample.ttft_ms - before_ms)
    return upstream, after


def breakdown(
    direct: Sequence[tuple[str, TurnSample]],
    chatbus: Sequence[tuple[str, TurnSample]],
    received: Mapping[str, float],
) -> dict[str, Any]:
    """Both arms' halves of TTFT, and what chatbus adds to each."""
    direct_up, direct_after = (summarize(values) for values in split(direct, received))
    ours_up, ours_after = (summarize(values) for values in split(chatbus, received))
    return {
        "direct": {"upstream_ms": direct_up.to_json(), "after_ms": direct_after.to_json()},
        "chatbus": {"upstream_ms": ours_up.to_json(), "after_ms": ours_after.to_json()},
        "added": {
            "upstream_ms": rounded(added(ours_up, direct_up)),
            "after_ms": rounded(added(ours_after, direct_after)),
        },
    }
