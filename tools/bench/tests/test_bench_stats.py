"""The benchmark's arithmetic: percentiles, added latency, lost chunks, TTFT split, rates."""

from __future__ import annotations

import pytest
from chatbus_bench.breakdown import arrivals, breakdown, marked
from chatbus_bench.options import parse_scenarios
from chatbus_bench.samples import (
    Expected,
    TurnSample,
    added_latency,
    chunk_times_to_sample,
    peak_streaming,
    totals,
)
from chatbus_bench.scenarios.streams import turn_seconds
from chatbus_bench.scenarios.throughput import completion_rate_of
from chatbus_bench.stats import added, percentile, summarize
from chatbus_bench.upstream import Reply

EXPECTED = Expected("a b c", 3)


def test_percentile_interpolates_like_numpy() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(values, 0) == 15.0
    assert percentile(values, 50) == 35.0
    assert percentile(values, 100) == 50.0
    assert percentile(values, 40) == pytest.approx(29.0)  # numpy.percentile(values, 40)
    assert percentile(list(reversed(values)), 90) == pytest.approx(46.0)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_added_is_the_difference_of_percentiles_not_of_pairs() -> None:
    direct = summarize([1.0] * 99 + [100.0])
    chatbus = summarize([3.0] * 100)
    result = added(chatbus, direct)
    assert result["p50"] == pytest.approx(2.0)
    assert result["p99"] == pytest.approx(3.0 - (1.0 + 0.01 * 99))
    assert added(summarize([]), direct) == {"p50": None, "p90": None, "p99": None}


def test_a_complete_answer_loses_nothing_and_yields_gaps() -> None:
    sample = chunk_times_to_sample(
        "chatbus", [10.0, 30.0, 55.0], ["a", " b", " c"], [1, 2, 3], total=60.0, expected=EXPECTED
    )
    assert sample.ok and sample.error is None
    assert sample.ttft_ms == 10.0
    assert sample.gaps_ms == [20.0, 25.0]
    assert (sample.lost_chunks, sample.duplicate_chunks) == (0, 0)


def test_missing_and_duplicated_chunks_are_counted() -> None:
    missing = chunk_times_to_sample(
        "chatbus", [10.0, 30.0], ["a", " c"], [1, 3], total=60.0, expected=EXPECTED
    )
    assert not missing.ok
    assert missing.lost_chunks == 1
    assert missing.error == "incomplete answer"
    doubled = chunk_times_to_sample(
        "chatbus", [1.0, 2.0, 3.0], ["a", " b", " b"], [1, 2, 2], total=4.0, expected=EXPECTED
    )
    assert doubled.duplicate_chunks == 1 and doubled.lost_chunks == 1
    # Even with every chunk counted, wrong text is a loss.
    garbled = chunk_times_to_sample(
        "direct", [1.0, 2.0, 3.0], ["a", " x", " c"], None, total=4.0, expected=EXPECTED
    )
    assert garbled.lost_chunks == 1


def test_an_error_is_a_failed_turn_and_stays_out_of_the_latencies() -> None:
    good = chunk_times_to_sample(
        "direct", [5.0, 6.0, 7.0], ["a", " b", " c"], None, total=8.0, expected=EXPECTED
    )
    failed = chunk_times_to_sample(
        "direct", [1.0], ["a"], None, total=None, expected=EXPECTED, error="timeout"
    )
    result = totals([good, failed])
    assert (result.turns, result.failed) == (2, 1)
    assert result.errors == {"timeout": 1}
    assert result.ttft.count == 1 and result.ttft.p50 == 5.0
    assert result.lost_chunks == 0  # a timed-out turn is a failure, not a lost chunk


def test_added_latency_covers_ttft_gap_and_total() -> None:
    def arm(ttft: float, arm_name: str) -> object:
        return chunk_times_to_sample(
            arm_name,  # type: ignore[arg-type]
            [ttft, ttft + 20, ttft + 40],
            ["a", " b", " c"],
            None,
            total=ttft + 50,
            expected=EXPECTED,
        )

    direct = totals([arm(4.0, "direct")])  # type: ignore[list-item]
    chatbus = totals([arm(7.5, "chatbus")])  # type: ignore[list-item]
    result = added_latency(chatbus, direct)
    assert result["ttft_ms"]["p50"] == 3.5
    assert result["gap_ms"]["p99"] == 0.0
    assert result["total_ms"]["p90"] == 3.5


def test_ttft_split_lines_turns_up_with_the_emulator_log() -> None:
    marker, question = marked("Q")
    assert question.endswith(f"[turn {marker}]")
    sample = chunk_times_to_sample(
        "chatbus", [30.0, 31.0, 32.0], ["a", " b", " c"], [1, 2, 3],
        total=40.0, expected=EXPECTED, sent_at_unix=1000.0,
    )  # fmt: skip
    records = [
        {"body": {"messages": [{"role": "user", "content": question}]}, "received_at": 1000.02},
        {"body": {"messages": [{"role": "user", "content": "unmarked"}]}, "received_at": 1.0},
    ]
    received = arrivals(records)
    assert received == {marker: 1000.02}
    split = breakdown([], [(marker, sample)], received)
    assert split["chatbus"]["upstream_ms"]["p50"] == pytest.approx(20.0, abs=1e-3)
    assert split["chatbus"]["after_ms"]["p50"] == pytest.approx(10.0, abs=1e-3)
    assert split["added"]["upstream_ms"]["p50"] is None  # no direct turns


def test_peak_streaming_counts_overlapping_streams_not_queued_ones() -> None:
    def turn(sent_at: float, ttft_ms: float, total_ms: float) -> TurnSample:
        return TurnSample("chatbus", ok=True, ttft_ms=ttft_ms, total_ms=total_ms, sent_at=sent_at)

    # Three turns sent together; the third waits 1 s before streaming, after the others end.
    samples = [turn(0.0, 10, 500), turn(0.0, 20, 600), turn(0.0, 1000, 1500)]
    assert peak_streaming(samples) == 2
    # A turn that ends exactly when another starts does not overlap it.
    assert peak_streaming([turn(0.0, 0, 100), turn(0.1, 0, 100)]) == 1
    assert peak_streaming([TurnSample("direct")]) == 0


def test_completion_rate_runs_from_the_first_completion_to_the_last() -> None:
    assert completion_rate_of([10.0, 10.5, 11.0, 12.0]) == pytest.approx(1.5)
    assert completion_rate_of([3.0]) == 0.0


def test_reply_shapes_and_scenario_names() -> None:
    reply = Reply(64, 0.0, 20.0)
    assert reply.expected.chunks == 64
    assert reply.text.startswith("lorem ipsum")
    assert turn_seconds(reply) == pytest.approx(1.26)
    assert parse_scenarios("idle, overhead") == ("overhead", "idle")
    with pytest.raises(ValueError, match="unknown"):
        parse_scenarios("overhead,nope")
