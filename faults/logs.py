"""Where the children's output goes: one log file, and the lines kept to wait on them."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from chatbus_cli.processes import OutputPrinter


class RecordingPrinter(OutputPrinter):
    """Writes `name | line` to a file and remembers each child's lines (start-up banners)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = path.open("a", encoding="utf-8")
        super().__init__(self._file)
        self._seen: dict[str, list[str]] = {}
        self._seen_lock = threading.Lock()

    def lines(
        self, name: str, texts: Iterable[str], *, colour: str | None = None, bold: bool = False
    ) -> None:
        """Write and remember; called from each child's output thread."""
        texts = list(texts)
        with self._seen_lock:
            self._seen.setdefault(name, []).extend(texts)
        super().lines(name, texts, colour=colour, bold=bold)

    def count(self, name: str, marker: str) -> int:
        """How many lines of `name` so far contain `marker`."""
        with self._seen_lock:
            return sum(marker in line for line in self._seen.get(name, ()))

    def tail(self, name: str, lines: int = 30) -> str:
        """The last lines of `name`, for a failure message."""
        with self._seen_lock:
            return "\n".join(self._seen.get(name, [])[-lines:])

    def close(self) -> None:
        """Close the log file (children must be gone)."""
        self._file.close()
