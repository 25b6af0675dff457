"""The issue's targets, checked against a results dict; never passed when not measured.

Added latency is chatbus minus direct. When the direct arm itself fell behind the
emulator's pace (the load client or the emulator saturated), its percentiles grow and
the difference shrinks: it is then a lower bound. A failure stays a failure, but a pass
proves nothing and is reported as inconclusive (`passed` None) with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

TARGET_STREAMS = 200
BASELINE_ON_PACE = 0.9
"""The direct arm is a valid baseline when this share of its turns kept the pace."""
BUSY_MACHINE_PERCENT = 25.0
"""Other work above this CPU (% of one core) during a scenario is noted on its targets."""


@dataclass(frozen=True)
class Target:
    """One target: what was asked, what was measured, whether it passed.

    `passed` is None when the run did not measure it (scenario not run, quick mode) or
    the measurement cannot show a pass (see the module docstring).
    """

    name: str
    limit: str
    measured: float | None
    unit: str
    passed: bool | None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """The results-file form."""
        return {
            "name": self.name,
            "limit": self.limit,
            "measured": self.measured,
            "unit": self.unit,
            "passed": self.passed,
            "note": self.note,
        }


def _dig(data: Any, *path: str) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _at_most(name: str, value: Any, limit: float, unit: str) -> Target:
    measured = _number(value)
    passed = None if measured is None else measured <= limit
    return Target(name, f"<= {limit:g} {unit}", measured, unit, passed)


def _at_least(name: str, value: Any, limit: float, unit: str) -> Target:
    measured = _number(value)
    passed = None if measured is None else measured >= limit
    return Target(name, f">= {limit:g} {unit}", measured, unit, passed)


def _noted(target: Target, *notes: str) -> Target:
    text = "; ".join(note for note in (target.note, *notes) if note)
    return replace(target, note=text)


def _baseline(target: Target, level: Mapping[str, Any] | None) -> Target:
    """Turn a pass against a direct arm that fell behind into an inconclusive result."""
    paced = _number(_dig(level, "on_pace", "direct"))
    if paced is None or paced >= BASELINE_ON_PACE:
        return target
    note = f"direct arm kept pace in {paced:.0%} of turns: the difference is a lower bound"
    if target.passed:
        return _noted(replace(target, passed=None), note)
    return _noted(target, note)


def _others(usages: Iterable[Any]) -> str:
    """A note when other work took a noticeable share of the machine."""
    busiest = max((_number(_dig(u, "others_cpu_percent")) or 0.0 for u in usages), default=0.0)
    if busiest < BUSY_MACHINE_PERCENT:
        return ""
    return f"other work on the machine used up to {busiest:.0f}% CPU"


def _level(results: Mapping[str, Any], streams: int) -> Mapping[str, Any] | None:
    for level in _dig(results, "streams", "levels") or []:
        if level.get("streams") == streams:
            return level  # type: ignore[no-any-return]
    return None


def _ceiling(flagged: Any) -> str:
    return "near the emulator's ceiling" if flagged else ""


def _chatbus_phases(level: Mapping[str, Any] | None) -> list[Any]:
    return [phase for phase in _dig(level, "phases") or [] if phase.get("arm") == "chatbus"]


def evaluate(results: Mapping[str, Any]) -> list[Target]:
    """Every target of issue #9, in the order the issue lists them."""
    overhead = results.get("overhead")
    busy = _others([_dig(overhead, "usage")])
    level = _level(results, TARGET_STREAMS)
    level_notes = (_ceiling(_dig(level, "near_emulator_ceiling")), _others(_chatbus_phases(level)))
    levels = _dig(results, "streams", "levels") or []
    lost = sum(int(item.get("lost_chunks") or 0) for item in levels) if levels else None
    failed = sum(int(_dig(item, "chatbus", "failed") or 0) for item in levels)
    steps: list[dict[str, Any]] = _dig(results, "throughput", "steps") or []
    best: dict[str, Any] = max(steps, key=lambda step: step.get("completed_per_s") or 0, default={})
    idle = results.get("idle")
    ttft_1 = _dig(overhead, "added", "ttft_ms") or {}
    return [
        _noted(_at_most("added TTFT p50, concurrency 1", ttft_1.get("p50"), 1, "ms"), busy),
        _noted(_at_most("added TTFT p99, concurrency 1", ttft_1.get("p99"), 3, "ms"), busy),
        _noted(
            _baseline(
                _at_most(
                    f"added TTFT p99, {TARGET_STREAMS} streams",
                    _dig(level, "added", "ttft_ms", "p99"),
                    15,
                    "ms",
                ),
                level,
            ),
            *level_notes,
        ),
        _noted(
            _baseline(
                _at_most(
                    f"added per-chunk p99, {TARGET_STREAMS} streams",
                    _dig(level, "added", "gap_ms", "p99"),
                    2,
                    "ms",
                ),
                level,
            ),
            *level_notes,
        ),
        _noted(
            _at_most("lost chunks, every stream level", lost, 0, "chunks"),
            f"{failed} chatbus turns failed (not counted as lost)" if failed else "",
        ),
        _noted(
            _at_least(
                "completed turns/s, persistence on",
                _dig(results, "throughput", "max_completed_per_s"),
                300,
                "turns/s",
            ),
            _ceiling(best.get("near_emulator_ceiling")),
            _others([best.get("usage")]),
        ),
        _noted(
            _at_most("RSS per idle WebSocket", _dig(idle, "rss_per_socket_kib"), 40, "KiB"),
            "capped by RLIMIT_NOFILE" if _dig(idle, "capped_by_file_limit") else "",
        ),
    ]
