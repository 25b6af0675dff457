"""What one measured turn looked like from the client, and the totals of many.

Times are client-side `perf_counter` readings relative to the moment the request was
sent: `ttft_ms` to the first content chunk, `gaps_ms` between successive content
chunks, `total_ms` to the end (`chat.end`, or the end of the SSE stream).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .stats import Summary, added, rounded, summarize

Arm = Literal["direct", "chatbus"]
ARMS: tuple[Arm, ...] = ("direct", "chatbus")


@dataclass(frozen=True)
class Expected:
    """The answer the emulator is set to stream: its text and number of chunks."""

    text: str
    chunks: int


@dataclass
class TurnSample:
    """One turn of one arm."""

    arm: Arm
    ok: bool = False
    error: str | None = None
    ttft_ms: float | None = None
    total_ms: float | None = None
    gaps_ms: list[float] = field(default_factory=list)
    chunks: int = 0
    lost_chunks: int = 0
    duplicate_chunks: int = 0
    accepted_ms: float | None = None
    """chatbus only: when `chat.accepted` arrived (the turn is durable in JetStream)."""
    sent_at_unix: float | None = None
    """Wall-clock send time, to line the turn up with the emulator's request log."""
    sent_at: float | None = None
    """`perf_counter` at the send, to see which turns streamed at the same time."""


def chunk_times_to_sample(
    arm: Arm,
    times: Sequence[float],
    texts: Sequence[str],
    seqs: Sequence[int] | None,
    *,
    total: float | None,
    expected: Expected,
    error: str | None = None,
    accepted: float | None = None,
    sent_at_unix: float | None = None,
    sent_at: float | None = None,
) -> TurnSample:
    """Build a sample from chunk arrival times (ms since the send) and their texts.

    A turn that ended (`error` None) lost chunks unless the concatenated text is exactly
    the expected answer: then the missing count is the expected chunks minus the distinct
    ones received (at least one). A turn that failed (timeout, error frame) is a failed
    turn, not a count of lost chunks. `seqs` (chatbus only) also reveals duplicates.
    """
    distinct = len(set(seqs)) if seqs is not None else len(texts)
    duplicates = len(seqs) - distinct if seqs is not None else 0
    complete = "".join(texts) == expected.text
    lost = 0 if complete or error is not None else max(1, expected.chunks - distinct)
    if error is None and not complete:
        error = "incomplete answer"
    return TurnSample(
        arm=arm,
        ok=error is None and total is not None,
        error=error,
        ttft_ms=times[0] if times else None,
        total_ms=total,
        gaps_ms=[later - earlier for earlier, later in itertools.pairwise(times)],
        chunks=len(texts),
        lost_chunks=lost,
        duplicate_chunks=duplicates,
        accepted_ms=accepted,
        sent_at_unix=sent_at_unix,
        sent_at=sent_at,
    )


@dataclass(frozen=True)
class ArmTotals:
    """Many turns of one arm: latency summaries, chunk counts and failures."""

    turns: int
    failed: int
    ttft: Summary
    gap: Summary
    total: Summary
    accepted: Summary
    chunks: int
    lost_chunks: int
    duplicate_chunks: int
    errors: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """The results-file form."""
        return {
            "turns": self.turns,
            "failed": self.failed,
            "ttft_ms": self.ttft.to_json(),
            "gap_ms": self.gap.to_json(),
            "total_ms": self.total.to_json(),
            "accepted_ms": self.accepted.to_json(),
            "chunks": self.chunks,
            "lost_chunks": self.lost_chunks,
            "duplicate_chunks": self.duplicate_chunks,
            "errors": self.errors,
        }


def totals(samples: Iterable[TurnSample]) -> ArmTotals:
    """Aggregate samples of one arm; latencies only from turns that completed."""
    rows = list(samples)
    good = [row for row in rows if row.ok]
    errors: dict[str, int] = {}
    for row in rows:
        if row.error is not None:
            errors[row.error] = errors.get(row.error, 0) + 1
    return ArmTotals(
        turns=len(rows),
        failed=len(rows) - len(good),
        ttft=summarize(row.ttft_ms for row in good if row.ttft_ms is not None),
        gap=summarize(gap for row in good for gap in row.gaps_ms),
        total=summarize(row.total_ms for row in good if row.total_ms is not None),
        accepted=summarize(row.accepted_ms for row in good if row.accepted_ms is not None),
        chunks=sum(row.chunks for row in rows),
        lost_chunks=sum(row.lost_chunks for row in rows),
        duplicate_chunks=sum(row.duplicate_chunks for row in rows),
        errors=errors,
    )


def peak_streaming(samples: Iterable[TurnSample]) -> int:
    """Most turns streaming at one moment (between their first chunk and their end)."""
    edges: list[tuple[float, int]] = []
    for sample in samples:
        if sample.sent_at is None or sample.ttft_ms is None or sample.total_ms is None:
            continue
        edges.append((sample.sent_at + sample.ttft_ms / 1000, 1))
        edges.append((sample.sent_at + sample.total_ms / 1000, -1))
    peak = current = 0
    for _, step in sorted(edges):  # an end sorts before a start at the same instant
        current += step
        peak = max(peak, current)
    return peak


def added_latency(chatbus: ArmTotals, direct: ArmTotals) -> dict[str, dict[str, float | None]]:
    """Added TTFT, inter-chunk gap and total per percentile (chatbus minus direct, ms)."""
    return {
        "ttft_ms": rounded(added(chatbus.ttft, direct.ttft)),
        "gap_ms": rounded(added(chatbus.gap, direct.gap)),
        "total_ms": rounded(added(chatbus.total, direct.total)),
    }
