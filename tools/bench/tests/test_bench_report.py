"""Targets, the Markdown report and the profile summary, from hand-made results."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chatbus_bench.profiling import parse_collapsed, parse_frame, top_costs
from chatbus_bench.report import render, table
from chatbus_bench.results import stem_for
from chatbus_bench.targets import evaluate


def _arm(ttft: float, failed: int = 0) -> dict[str, Any]:
    summary = {"count": 10, "mean": ttft, "p50": ttft, "p90": ttft, "p99": ttft, "max": ttft}
    return {"turns": 10, "failed": failed, "ttft_ms": summary, "gap_ms": summary,
            "total_ms": summary, "lost_chunks": 0}  # fmt: skip


def _results() -> dict[str, Any]:
    added = {"ttft_ms": {"p50": 0.8, "p90": 1.5, "p99": 2.5},
             "gap_ms": {"p50": 0.1, "p90": 0.5, "p99": 1.9},
             "total_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0}}  # fmt: skip
    level = {"streams": 200, "added": {**added, "ttft_ms": {"p50": 5, "p90": 9, "p99": 20.0}},
             "direct": _arm(4), "chatbus": _arm(9), "lost_chunks": 0, "phases": [],
             "near_emulator_ceiling": True, "peak_in_flight": {"chatbus": 200},
             "chunks_per_s": {"chatbus": 9000.0, "direct": 9500.0}}  # fmt: skip
    return {
        "stem": "2026-01-02-030405",
        "machine": {"cpu": "Test CPU", "cores": 2},
        "overhead": {"added": added, "direct": _arm(4.0), "chatbus": _arm(4.8)},
        "streams": {"levels": [{**level, "streams": 50, "lost_chunks": 0}, level]},
        "throughput": {"max_completed_per_s": 310.0, "steps": [
            {"offered_per_s": 300, "sent": 1200, "persisted": 1200, "completed_per_s": 310.0,
             "errors": {}, "keeping_up": True, "near_emulator_ceiling": False}]},
        "idle": {"rss_per_socket_kib": 52.0, "capped_by_file_limit": True, "opened": 5,
                 "wanted": 10, "gateway_rss_before_mib": 1.0, "gateway_rss_after_mib": 2.0},
    }  # fmt: skip


def test_targets_pass_fail_and_notes() -> None:
    targets = {t.name: t for t in evaluate(_results())}
    assert targets["added TTFT p50, concurrency 1"].passed is True
    assert targets["added TTFT p99, concurrency 1"].passed is True
    ttft200 = targets["added TTFT p99, 200 streams"]
    assert ttft200.passed is False and ttft200.measured == 20.0
    assert ttft200.note == "near the emulator's ceiling"
    assert targets["added per-chunk p99, 200 streams"].passed is True
    assert targets["lost chunks, every stream level"].passed is True
    assert targets["completed turns/s, persistence on"].passed is True
    idle = targets["RSS per idle WebSocket"]
    assert idle.passed is False and idle.note == "capped by RLIMIT_NOFILE"


def test_a_pass_against_a_lagging_baseline_is_inconclusive_and_busy_machines_are_noted() -> None:
    results = _results()
    level = results["streams"]["levels"][1]
    level["on_pace"] = {"direct": 0.4, "chatbus": 0.5}
    level["phases"] = [{"arm": "chatbus", "others_cpu_percent": 120.0}]
    targets = {t.name: t for t in evaluate(results)}
    chunk = targets["added per-chunk p99, 200 streams"]
    assert chunk.measured == 1.9 and chunk.passed is None
    assert "direct arm kept pace in 40% of turns" in chunk.note
    assert "other work on the machine used up to 120% CPU" in chunk.note
    # A failure against a lagging baseline is still a failure (the real value is higher).
    assert targets["added TTFT p99, 200 streams"].passed is False


def test_unmeasured_targets_are_never_passed() -> None:
    targets = evaluate({"overhead": {"error": "boom"}})
    assert all(target.passed is None for target in targets)


def test_report_renders_every_section() -> None:
    text = render(_results())
    assert text.startswith("# chatbus benchmark 2026-01-02-030405")
    assert "| added TTFT p99, 200 streams | <= 15 ms | 20.00 ms | FAIL |" in text
    assert "| concurrency 1 | 0.8 | 1.5 | 2.5 |" in text
    assert "## Sustained streams" in text
    assert "## Throughput, open loop, persistence on" in text
    assert "capped by RLIMIT_NOFILE" in text


def test_table_alignment_and_missing_cells() -> None:
    lines = table(["name", "value"], [["a", 1.25], ["b", None]])
    assert lines == ["| name | value |", "|---|---:|", "| a | 1.2 |", "| b | - |"]


def test_profile_costs_from_collapsed_stacks() -> None:
    root = "<module> (chatbus-gateway:1);run (uvicorn/server.py:85)"
    collapsed = [
        f"{root};send (websockets/protocol.py:320) 6",
        f"{root};dumps (json/__init__.py:231) 3",
        f"{root} 1",
        "not a stack line",
    ]
    costs = top_costs(parse_collapsed(collapsed))
    assert costs.samples == 10
    assert costs.self_time[0] == ("send (websockets/protocol.py)", 6)
    assert dict(costs.packages) == {"websockets": 6, "json": 3, "uvicorn": 1}
    # Frames on every stack (the entry point, the loop) are not listed as inclusive costs.
    assert [name for name, _ in costs.inclusive] == [
        "send (websockets/protocol.py)",
        "dumps (json/__init__.py)",
    ]
    assert costs.to_json()["self"][0]["percent"] == 60.0
    assert parse_frame("weird frame").file == "?"


def test_stems_sort_by_time_and_mark_quick_runs() -> None:
    moment = datetime(2026, 5, 1, 14, 22, 33, tzinfo=UTC)
    assert stem_for(moment, quick=False) == "2026-05-01-142233"
    assert stem_for(moment, quick=True) == "2026-05-01-142233-quick"
