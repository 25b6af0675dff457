"""What a run does: which scenarios, and how big each one is (full or `--quick`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .upstream import Reply

SCENARIOS: tuple[str, ...] = ("overhead", "streams", "throughput", "idle", "embeddings")
PROFILED_STREAMS = 200
"""The concurrency whose hot path is profiled (the issue's 200-stream scenario)."""


@dataclass(frozen=True)
class OverheadPlan:
    """Concurrency 1: turns alternate between the arms, pair order flipping each time."""

    turns_per_arm: int
    warmup_turns: int
    reply: Reply


@dataclass(frozen=True)
class StreamsPlan:
    """N concurrent streams per arm, in rounds alternating which arm goes first."""

    concurrencies: tuple[int, ...]
    turns_per_stream: int
    rounds: int
    reply: Reply
    profile_seconds: float
    single_round_above: int = 200
    """Levels above this run one round: their phases are long and their backlog big."""


@dataclass(frozen=True)
class ThroughputPlan:
    """Open-loop arrival rates, raised step by step until completions fall behind."""

    rates: tuple[float, ...]
    step_seconds: float
    sockets: int
    drain_seconds: float
    reply: Reply


@dataclass(frozen=True)
class IdlePlan:
    """Idle WebSockets held open against the gateway."""

    sockets: int
    settle_seconds: float


@dataclass(frozen=True)
class EmbeddingsPlan:
    """Synthetic `message.created` events published before the embeddings service starts."""

    events: int
    measure_seconds: float
    """How long rows are counted once the first one is there."""
    load_seconds: float = 180.0
    """How long the service may take to load its model and store a first row."""


@dataclass(frozen=True)
class CeilingPlan:
    """How hard the emulator is pushed to find its own limit."""

    concurrency: int
    seconds: float
    stream_reply: Reply
    turn_reply: Reply


@dataclass(frozen=True)
class BenchOptions:
    """The whole run."""

    scenarios: tuple[str, ...]
    quick: bool
    output_dir: Path
    profile: bool
    ceiling: CeilingPlan
    overhead: OverheadPlan
    streams: StreamsPlan
    throughput: ThroughputPlan
    idle: IdlePlan
    embeddings: EmbeddingsPlan
    turn_timeout_seconds: float = 60.0


def _full(output_dir: Path) -> BenchOptions:
    return BenchOptions(
        scenarios=SCENARIOS,
        quick=False,
        output_dir=output_dir,
        profile=True,
        ceiling=CeilingPlan(64, 4.0, Reply(64), Reply(8)),
        overhead=OverheadPlan(400, 10, Reply(16, 0.0, 10.0)),
        streams=StreamsPlan((50, 200, 500), 2, 2, Reply(64, 0.0, 20.0), 6.0),
        throughput=ThroughputPlan((10, 20, 40, 80, 160, 320, 480), 4.0, 64, 20.0, Reply(8)),
        idle=IdlePlan(10_000, 3.0),
        embeddings=EmbeddingsPlan(2_000, 30.0),
        turn_timeout_seconds=30.0,
    )


def _quick(output_dir: Path) -> BenchOptions:
    return BenchOptions(
        scenarios=SCENARIOS,
        quick=True,
        output_dir=output_dir,
        profile=True,
        ceiling=CeilingPlan(16, 1.0, Reply(64), Reply(8)),
        overhead=OverheadPlan(8, 2, Reply(8, 0.0, 5.0)),
        streams=StreamsPlan((5, 20), 1, 1, Reply(16, 0.0, 20.0), 1.0),
        throughput=ThroughputPlan((10, 20), 1.5, 8, 10.0, Reply(8)),
        idle=IdlePlan(200, 1.0),
        embeddings=EmbeddingsPlan(100, 10.0),
        turn_timeout_seconds=20.0,
    )


def parse_scenarios(text: str) -> tuple[str, ...]:
    """`overhead,streams` -> the names, in the canonical order; ValueError on an unknown one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise ValueError(
            f"unknown scenario(s): {', '.join(unknown)} (known: {', '.join(SCENARIOS)})"
        )
    return tuple(name for name in SCENARIOS if name in names)


def build_options(
    *,
    scenarios: Sequence[str] | None,
    quick: bool,
    output_dir: Path,
    profile: bool = True,
    idle_sockets: int | None = None,
    concurrencies: Sequence[int] | None = None,
) -> BenchOptions:
    """The preset (full or quick) with the command line's overrides applied."""
    options = _quick(output_dir) if quick else _full(output_dir)
    options = replace(options, profile=profile)
    if scenarios is not None:
        options = replace(options, scenarios=tuple(scenarios))
    if idle_sockets is not None:
        options = replace(options, idle=replace(options.idle, sockets=idle_sockets))
    if concurrencies:
        options = replace(
            options, streams=replace(options.streams, concurrencies=tuple(concurrencies))
        )
    return options
