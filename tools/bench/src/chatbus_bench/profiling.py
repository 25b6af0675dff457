"""Sampling profiles of the gateway and inference processes with py-spy, and their top costs.

`py-spy record --format raw` writes collapsed stacks (`frame;frame;frame count`, the
input of flamegraph.pl and speedscope), one file per process. `top_costs` reads them
back: self time per function (where the CPU actually was), inclusive time per function
(what it caused), and self time per top-level package. Only samples of the thread
holding the GIL count (`--gil`): idle waits (epoll, thread pools waiting for work) are
left out, so shares are of the Python work the process did, not of wall time.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbus_cli.processes import script_path

RATE_HZ = 100
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True)
class Frame:
    """One stack frame as py-spy names it: `function (package/module.py:line)`."""

    function: str
    file: str

    @property
    def label(self) -> str:
        """`function (file)`, without the line number (lines of one function add up)."""
        return f"{self.function} ({self.file})"

    @property
    def package(self) -> str:
        """The top-level package or stdlib module the file belongs to."""
        head = self.file.split("/", 1)[0]
        return head.removesuffix(".py") if head else "?"


def parse_frame(text: str) -> Frame:
    """A frame from py-spy's `function (file:line)` text (anything else is kept whole)."""
    match = _FRAME.match(text.strip())
    if match is None:
        return Frame(text.strip(), "?")
    return Frame(match["function"], match["file"])


def parse_collapsed(lines: Iterable[str]) -> list[tuple[list[Frame], int]]:
    """(stack from the root, sample count) per line of a collapsed-stacks file."""
    stacks: list[tuple[list[Frame], int]] = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        stacks.append(([parse_frame(part) for part in stack.split(";")], int(count)))
    return stacks


@dataclass(frozen=True)
class TopCosts:
    """Where one process spent its busy samples."""

    samples: int
    self_time: list[tuple[str, int]]
    inclusive: list[tuple[str, int]]
    packages: list[tuple[str, int]]

    def to_json(self) -> dict[str, Any]:
        """Shares in percent of the busy samples."""

        def share(rows: list[tuple[str, int]]) -> list[dict[str, Any]]:
            return [
                {"name": name, "samples": count, "percent": round(100 * count / self.samples, 1)}
                for name, count in rows
            ]

        if self.samples == 0:
            return {"samples": 0, "self": [], "inclusive": [], "packages": []}
        return {
            "samples": self.samples,
            "self": share(self.self_time),
            "inclusive": share(self.inclusive),
            "packages": share(self.packages),
        }


def top_costs(stacks: list[tuple[list[Frame], int]], limit: int = 15) -> TopCosts:
    """Self time and inclusive time per function, self time per package, largest first."""
    own: Counter[str] = Counter()
    caused: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for frames, count in stacks:
        if not frames:
            continue
        total += count
        own[frames[-1].label] += count
        packages[frames[-1].package] += count
        for label in {frame.label for frame in frames}:
            caused[label] += count
    # Frames on (nearly) every stack (the event loop, `main`) say nothing about costs.
    informative = [(name, n) for name, n in caused.most_common() if n < 0.9 * total]
    return TopCosts(
        samples=total,
        self_time=own.most_common(limit),
        inclusive=informative[:limit],
        packages=packages.most_common(limit),
    )


def render_top(profiles: Mapping[str, Mapping[str, Any]], title: str) -> str:
    """The top costs of each profiled process as Markdown (what `py-spy top` would show)."""
    lines = [f"# {title}", ""]
    for name, data in profiles.items():
        lines += [f"## {name}", ""]
        if "error" in data:
            lines += [f"py-spy failed: {data['error']}", ""]
            continue
        stacks = data["collapsed"]
        lines += [f"{data['samples']} samples holding the GIL; stacks in `{stacks}`.", ""]
        for key, heading in (
            ("packages", "Self time by package"),
            ("self", "Self time by function"),
            ("inclusive", "Inclusive time by function"),
        ):
            lines += [f"### {heading}", "", "| % | samples | where |", "|---:|---:|---|"]
            for row in data[key]:
                lines.append(f"| {row['percent']} | {row['samples']} | `{row['name']}` |")
            lines.append("")
    return "\n".join(lines)


async def _run(argv: list[str], output: Path | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    text = out.decode("utf-8", errors="replace")
    if output is not None:
        await asyncio.to_thread(output.write_text, text)
    return process.returncode or 0, text


async def dump(targets: Mapping[str, int], out_dir: Path, stem: str) -> dict[str, str]:
    """`py-spy dump` of each process (one stack snapshot), saved as text; name -> file."""
    spy = script_path("py-spy")
    files: dict[str, str] = {}
    for name, pid in targets.items():
        path = out_dir / f"{stem}-{name}.dump.txt"
        await _run([spy, "dump", "--pid", str(pid)], path)
        files[name] = path.name
    return files


async def record(
    targets: Mapping[str, int], seconds: float, out_dir: Path, stem: str
) -> dict[str, dict[str, Any]]:
    """Record every target for `seconds` at once; per target the file and its top costs."""
    spy = script_path("py-spy")
    jobs: dict[str, tuple[Path, asyncio.Task[tuple[int, str]]]] = {}
    for name, pid in targets.items():
        path = out_dir / f"{stem}-{name}.collapsed.txt"
        argv = [spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
        argv += ["--rate", str(RATE_HZ), "--gil", "--function", "--format", "raw"]
        argv += ["--output", str(path)]
        jobs[name] = (path, asyncio.create_task(_run(argv)))
    results: dict[str, dict[str, Any]] = {}
    for name, (path, task) in jobs.items():
        code, text = await task
        if code != 0 or not path.exists():
            results[name] = {"error": text.strip()[-500:] or f"py-spy exited with {code}"}
            continue
        costs = top_costs(parse_collapsed(path.read_text().splitlines()), limit=25)
        results[name] = {"collapsed": path.name, **costs.to_json()}
    return results
