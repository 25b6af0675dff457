"""`chatbus-bench --quick` end to end on one scenario: the stack starts, both arms stream,
the files are written, nothing is left running (about 15 s)."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration


def _bench() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / "chatbus-bench"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "chatbus_bench.main"]


@pytest.mark.timeout(120)
def test_quick_overhead_run_writes_results(tmp_path: Path) -> None:
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    argv = [*_bench(), "--quick", "--scenarios", "overhead", "--no-profile"]
    done = subprocess.run(
        [*argv, "--output-dir", str(tmp_path)], capture_output=True, text=True, timeout=110
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (results_file,) = tmp_path.glob("*-quick.json")
    results = json.loads(results_file.read_text())
    overhead = results["overhead"]
    for arm in ("direct", "chatbus"):
        assert overhead[arm]["turns"] == 8
        assert overhead[arm]["failed"] == 0
        assert overhead[arm]["lost_chunks"] == 0
    assert overhead["added"]["ttft_ms"]["p50"] is not None
    assert results["tcp_nodelay"]["hops"], "no connection was inspected"
    wakeup = results["nats_wakeup"]
    assert wakeup["busy_ms"]["count"] == wakeup["after_idle_ms"]["count"] == 100
    assert "one NATS round trip" in done.stdout
    assert results_file.with_suffix(".md").read_text().startswith("# chatbus benchmark")
    assert "## Targets" in done.stdout
    leftovers = {child.pid for child in psutil.Process().children(recursive=True)} - before
    assert not leftovers
