"""Output for people (a rich table on a terminal) and for programs (`--json`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def print_json(value: Any) -> None:
    """`value` as one line of JSON on stdout."""
    sys.stdout.write(json.dumps(value, separators=(",", ":"), default=str) + "\n")


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str) -> None:
    """Rows as a table on a terminal; tab-separated with a header line otherwise."""
    if not sys.stdout.isatty():
        sys.stdout.write("\t".join(columns) + "\n")
        for row in rows:
            sys.stdout.write("\t".join(_cell(row.get(column)) for column in columns) + "\n")
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    Console().print(table)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)
