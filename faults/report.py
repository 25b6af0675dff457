"""The table the suite prints: one row per scenario."""

from __future__ import annotations

from dataclasses import dataclass

from .checks import Verdict


@dataclass(frozen=True)
class Row:
    """One scenario's numbers."""

    scenario: str
    verdict: Verdict
    seconds: float
    fault: str  # what was done, with its own counts


COLUMNS = (
    ("scenario", 24),
    ("accepted", 8),
    ("completed", 9),
    ("failed", 6),
    ("lost", 4),
    ("duplicated", 10),
    ("mismatched", 10),
    ("restarts", 8),
    ("resumes", 7),
    ("stalled", 7),
    ("unreplayable", 12),
    ("seconds", 7),
)


def _cells(row: Row) -> list[str]:
    verdict = row.verdict
    return [
        row.scenario,
        str(verdict.accepted),
        str(verdict.completed),
        str(verdict.failed),
        str(verdict.lost),
        str(verdict.duplicated),
        str(verdict.mismatched),
        str(verdict.restarts),
        str(verdict.resumes),
        str(len(verdict.stalled)),
        str(len(verdict.unreplayable)),
        f"{row.seconds:.0f}",
    ]


def table(rows: list[Row]) -> list[str]:
    """The table's lines, then one line per scenario saying what its fault was."""
    widths = [width for _, width in COLUMNS]
    header = "  ".join(name.rjust(width) for name, width in COLUMNS)
    lines = [header, "  ".join("-" * width for width in widths)]
    for row in rows:
        cells = _cells(row)
        padded = [cell.rjust(width) for cell, width in zip(cells, widths, strict=True)]
        padded[0] = cells[0].ljust(widths[0])
        lines.append("  ".join(padded))
    lines.append("")
    lines.extend(f"{row.scenario}: {row.fault}" for row in rows)
    return lines
