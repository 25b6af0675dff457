"""Naming and writing a run's files: `<stem>.json`, `<stem>.md`, profiles beside them."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from .report import render

DEFAULT_OUTPUT_DIR = Path("bench/results")


def stem_for(started: datetime, quick: bool) -> str:
    """`2026-05-01-142233` (UTC), with `-quick` for smoke runs, so they never replace a result."""
    return started.strftime("%Y-%m-%d-%H%M%S") + ("-quick" if quick else "")


def write(results: dict[str, Any], output_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write the JSON and the Markdown report; their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / f"{stem}.json"
    markdown_path = output_dir / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    markdown_path.write_text(render(results))
    return json_path, markdown_path
