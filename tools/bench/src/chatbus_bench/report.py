"""The Markdown report of a results dict: targets first, then one table per scenario."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .stats import PERCENTILES
from .targets import Target, evaluate

PROCESS_ORDER = (
    "gateway",
    "inference",
    "conversation",
    "usage",
    "embeddings",
    "nats-server",
    "postgres",
    "emulator",
    "bench",
)


def fmt(value: Any, digits: int = 1) -> str:
    """A number for a table cell; `-` for missing values."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A GitHub-flavoured Markdown table (numbers right-aligned)."""
    body = [[fmt(cell) for cell in row] for row in rows]
    align = [
        "---:" if body and _numeric(row[i] for row in body) else "---" for i in range(len(header))
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return lines


def _numeric(cells: Iterable[str]) -> bool:
    def number(cell: str) -> bool:
        try:
            float(cell.split(" ")[0].split("/")[0])
        except ValueError:
            return cell == "-"
        return True

    return all(number(cell) for cell in cells)


def _verdict(target: Target) -> str:
    if target.passed is None:
        return "not measured"
    return "PASS" if target.passed else "FAIL"


def targets_table(targets: Sequence[Target]) -> list[str]:
    """Target, limit, measured value, verdict."""
    return table(
        ["target", "limit", "measured", "result", "note"],
        [
            [
                t.name,
                t.limit,
                f"{fmt(t.measured, 2)} {t.unit}" if t.measured is not None else "-",
                _verdict(t),
                t.note,
            ]
            for t in targets
        ],
    )


def _get(data: Mapping[str, Any] | None, *path: str) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _added_row(label: str, entry: Mapping[str, Any]) -> list[Any]:
    added = entry.get("added") or {}
    cells: list[Any] = [label]
    for metric in ("ttft_ms", "gap_ms", "total_ms"):
        cells += [_get(added, metric, f"p{pct}") for pct in PERCENTILES]
    cells += [_get(entry, "chatbus", "lost_chunks"), _get(entry, "chatbus", "failed")]
    return cells


def added_table(results: Mapping[str, Any]) -> list[str]:
    """Added latency (chatbus minus direct) per scenario and percentile."""
    rows = []
    if results.get("overhead"):
        rows.append(_added_row("concurrency 1", results["overhead"]))
    for level in _get(results, "streams", "levels") or []:
        rows.append(_added_row(f"{level['streams']} streams", level))
    header = ["scenario"]
    for metric in ("TTFT", "gap", "total"):
        header += [f"{metric} p{pct}" for pct in PERCENTILES]
    return table([*header, "lost chunks", "failed turns"], rows) if rows else []


def arms_table(results: Mapping[str, Any]) -> list[str]:
    """Both arms' own percentiles, so the differences above can be read in context."""
    rows = []
    entries: list[tuple[str, Mapping[str, Any]]] = []
    if results.get("overhead"):
        entries.append(("concurrency 1", results["overhead"]))
    entries += [
        (f"{lvl['streams']} streams", lvl) for lvl in _get(results, "streams", "levels") or []
    ]
    for label, entry in entries:
        for arm in ("direct", "chatbus"):
            rows.append(
                [label, arm]
                + [_get(entry, arm, "ttft_ms", f"p{pct}") for pct in PERCENTILES]
                + [_get(entry, arm, "gap_ms", f"p{pct}") for pct in PERCENTILES]
                + [_get(entry, arm, "total_ms", "p50"), _get(entry, arm, "turns")]
            )
    header = [
        "scenario",
        "arm",
        "TTFT p50",
        "TTFT p90",
        "TTFT p99",
        "gap p50",
        "gap p90",
        "gap p99",
    ]
    return table([*header, "total p50", "turns"], rows) if rows else []


def split_table(results: Mapping[str, Any]) -> list[str]:
    """Concurrency 1: TTFT before the emulator got the request, and after (ms)."""
    split = _get(results, "overhead", "ttft_split")
    if not split:
        return []
    rows = []
    for arm in ("direct", "chatbus", "added"):
        accepted = _get(results, "overhead", arm, "accepted_ms") or {}
        rows.append(
            [arm, accepted.get("p50"), accepted.get("p99")]
            + [_get(split, arm, "upstream_ms", f"p{pct}") for pct in (50, 99)]
            + [_get(split, arm, "after_ms", f"p{pct}") for pct in (50, 99)]
        )
    header = ["arm", "accepted p50", "accepted p99", "to upstream p50", "to upstream p99"]
    return table([*header, "upstream to client p50", "upstream to client p99"], rows)


def streams_table(results: Mapping[str, Any]) -> list[str]:
    """Sustained streams: streams held, chunks relayed, pace, CPU per chunk, emulator headroom."""
    rows = []
    for level in _get(results, "streams", "levels") or []:
        chatbus = [phase for phase in level.get("phases", []) if phase.get("arm") == "chatbus"]
        per_chunk = chatbus[-1].get("cpu_ms_per_chunk", {}) if chatbus else {}
        rows.append(
            [
                level["streams"],
                _get(level, "peak_streaming", "chatbus"),
                _get(level, "peak_streaming", "direct"),
                _get(level, "chunks_per_s", "chatbus"),
                _get(level, "chunks_per_s", "direct"),
                _get(level, "on_pace", "chatbus"),
                _get(level, "on_pace", "direct"),
                level.get("lost_chunks"),
                _micro(per_chunk.get("gateway")),
                _micro(per_chunk.get("inference")),
                level.get("near_emulator_ceiling"),
            ]
        )
    header = ["streams", "streaming at once chatbus", "streaming at once direct"]
    header += ["chunks/s chatbus", "chunks/s direct", "on pace chatbus", "on pace direct"]
    header += ["lost chunks", "gateway CPU µs/chunk", "inference CPU µs/chunk"]
    return table([*header, "near emulator ceiling"], rows) if rows else []


def _micro(milliseconds: Any) -> float | None:
    return round(milliseconds * 1000, 0) if isinstance(milliseconds, int | float) else None


def throughput_table(results: Mapping[str, Any]) -> list[str]:
    """Each open-loop step."""
    rows = [
        [
            step["offered_per_s"],
            step["sent"],
            step["persisted"],
            step["completed_per_s"],
            _get(step, "end_ms", "p50"),
            _get(step, "end_ms", "p99"),
            _get(step, "persisted_ms", "p50"),
            _get(step, "persisted_ms", "p99"),
            sum((step.get("errors") or {}).values()),
            _get(step, "cpu_ms_per_turn", "total"),
            step["keeping_up"],
        ]
        for step in _get(results, "throughput", "steps") or []
    ]
    header = ["offered/s", "sent", "persisted", "completed/s", "chat.end p50 ms", "chat.end p99 ms"]
    header += ["stored p50 ms", "stored p99 ms", "errors", "CPU ms/turn", "keeping up"]
    return table(header, rows) if rows else []


def usage_table(results: Mapping[str, Any]) -> list[str]:
    """CPU (% of one core) and peak RSS (MiB) per process, per scenario."""
    columns: list[tuple[str, Mapping[str, Any]]] = []
    if _get(results, "overhead", "usage"):
        columns.append(("concurrency 1", results["overhead"]["usage"]))
    for level in _get(results, "streams", "levels") or []:
        chatbus = [phase for phase in level.get("phases", []) if phase.get("arm") == "chatbus"]
        if chatbus:
            columns.append((f"{level['streams']} streams (chatbus)", chatbus[-1]))
    steps = _get(results, "throughput", "steps") or []
    if steps:
        best = max(steps, key=lambda step: step.get("completed_per_s") or 0)
        columns.append((f"throughput {best['offered_per_s']}/s", best.get("usage") or {}))
    for name in ("idle", "embeddings"):
        if _get(results, name, "usage"):
            columns.append((name, results[name]["usage"]))
    if not columns:
        return []
    names = [n for n in PROCESS_ORDER if any(n in (c.get("processes") or {}) for _, c in columns)]
    rows = []
    for name in names:
        row: list[Any] = [name]
        for _, usage in columns:
            entry = (usage.get("processes") or {}).get(name)
            row.append(
                f"{entry['cpu_percent']:.0f}% / {entry['rss_peak_mib']:.0f}" if entry else "-"
            )
        rows.append(row)
    rows.append(["other work on the machine", *(_cpu(u, "others_cpu_percent") for _, u in columns)])
    rows.append(["whole machine", *(_cpu(u, "machine_cpu_percent") for _, u in columns)])
    return table(["process", *(label for label, _ in columns)], rows)


def _cpu(usage: Mapping[str, Any], key: str) -> str:
    value = usage.get(key)
    return "-" if value is None else f"{value:.0f}%"


def _profile_lines(results: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for level in _get(results, "streams", "levels") or []:
        profile = level.get("profile")
        if not profile:
            continue
        lines.append(
            f"Profiled at {profile['concurrency']} streams (py-spy `--gil`: Python work only):"
        )
        lines.append("")
        for name, data in (profile.get("processes") or {}).items():
            if "error" in data:
                lines.append(f"- {name}: py-spy failed: {data['error']}")
                continue
            top = ", ".join(f"{row['name']} {row['percent']}%" for row in data["self"][:6])
            packages = ", ".join(f"{row['name']} {row['percent']}%" for row in data["packages"][:6])
            lines.append(f"- **{name}** ({data['samples']} samples, `{data['collapsed']}`)")
            lines.append(f"  - by package: {packages}")
            lines.append(f"  - top self time: {top}")
        lines.append("")
    return lines


def render(results: Mapping[str, Any]) -> str:
    """The whole report."""
    machine = results.get("machine") or {}
    lines = [
        f"# chatbus benchmark {results.get('stem', '')}",
        "",
        f"`{results.get('command', 'chatbus-bench')}` on {machine.get('cpu', '?')}, "
        f"{machine.get('cores', '?')} cores, {machine.get('memory_gib', '?')} GiB, "
        f"Linux {machine.get('kernel', '?')}, Python {machine.get('python', '?')}; "
        f"load average {_load(machine.get('load_average_at_start'))} at the start, "
        f"{_load(machine.get('load_average_at_end'))} at the end"
        + (" — **quick mode: smoke numbers, not results**" if results.get("quick") else ""),
        "",
        "## Targets",
        "",
        *targets_table(evaluate(results)),
        "",
    ]
    sections = [
        ("Added latency, chatbus minus direct (ms)", added_table(results)),
        ("Each arm (ms)", arms_table(results)),
        ("Where TTFT goes at concurrency 1 (ms)", split_table(results)),
        ("Sustained streams", streams_table(results)),
        ("Throughput, open loop, persistence on", throughput_table(results)),
        ("CPU (% of one core) / peak RSS (MiB)", usage_table(results)),
    ]
    for title, body in sections:
        if body:
            lines += [f"## {title}", "", *body, ""]
    lines += _facts(results)
    lines += _profile_lines(results)
    return "\n".join(lines).rstrip() + "\n"


def _load(values: Any) -> str:
    return "/".join(f"{value:.1f}" for value in values) if values else "?"


def _facts(results: Mapping[str, Any]) -> list[str]:
    facts: list[str] = []
    ceiling = results.get("emulator_ceiling")
    if ceiling:
        facts.append(
            f"- emulator ceiling: {fmt(_get(ceiling, 'streams', 'chunks_per_s'))} chunks/s, "
            f"{fmt(_get(ceiling, 'turns', 'turns_per_s'))} turns/s (emulator CPU "
            f"{fmt(_get(ceiling, 'streams', 'emulator_cpu_percent'))}% / "
            f"{fmt(_get(ceiling, 'turns', 'emulator_cpu_percent'))}%)"
        )
    wakeup = results.get("nats_wakeup")
    if wakeup and "busy_ms" in wakeup:
        facts.append(
            f"- one NATS round trip (a key-value read from the load client), p50: "
            f"{fmt(wakeup['busy_ms']['p50'], 2)} ms back to back, "
            f"{fmt(wakeup['after_idle_ms']['p50'], 2)} ms after "
            f"{wakeup['idle_seconds'] * 1000:.0f} ms idle"
        )
    throughput = results.get("throughput")
    if throughput:
        top = fmt(throughput.get("max_completed_per_s"))
        kept_up = fmt(throughput.get("max_sustained_offered_per_s"))
        facts.append(
            f"- throughput: best {top} completed turns/s; "
            f"highest offered rate kept up with: {kept_up}/s"
        )
    steps = _get(results, "throughput", "steps") or []
    best: dict[str, Any] = max(steps, key=lambda step: step.get("completed_per_s") or 0, default={})
    per_turn = best.get("cpu_ms_per_turn") or {}
    if per_turn:
        parts = ", ".join(
            f"{name} {per_turn[name]:.1f}" for name in PROCESS_ORDER if name in per_turn
        )
        facts.append(
            f"- CPU per completed turn at {best['offered_per_s']}/s (ms): {parts}; "
            f"chatbus total {fmt(per_turn.get('total'))}"
        )
    idle = results.get("idle")
    if idle:
        facts.append(
            f"- idle: {idle['opened']} of {idle['wanted']} sockets open, gateway RSS "
            f"{fmt(idle['gateway_rss_before_mib'])} -> {fmt(idle['gateway_rss_after_mib'])} MiB, "
            f"{fmt(idle['rss_per_socket_kib'], 2)} KiB per socket"
            + (" (capped by RLIMIT_NOFILE)" if idle.get("capped_by_file_limit") else "")
        )
    embeddings = results.get("embeddings")
    if embeddings:
        facts.append(
            f"- embeddings backlog: {embeddings['rows']} of {embeddings['backlog']} rows, "
            f"{fmt(embeddings.get('rows_per_s'))} rows/s after the first row "
            f"({fmt(embeddings.get('seconds_to_first_row'))} s to load and start)"
        )
    hops = _get(results, "tcp_nodelay", "hops")
    if hops:
        off = [hop["hop"] for hop in hops if not hop["all_nodelay"]]
        facts.append(
            f"- TCP_NODELAY: {len(hops) - len(off)} of {len(hops)} observed hops set"
            + (f"; not set: {', '.join(off)}" if off else "")
        )
    return ["## Other results", "", *facts, ""] if facts else []
