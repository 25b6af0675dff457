"""The system all scenarios share, its finaliser, and the table printed at the end."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from .bus import connected
from .processes import System
from .report import Row, table

_ROWS: list[Row] = []
_FAILED: list[str] = []
_ROOT: list[Path] = []


@pytest.fixture(scope="session")
def rows() -> list[Row]:
    """Where each scenario leaves its row of the table."""
    return _ROWS


@pytest.fixture(scope="session")
def root() -> Iterator[Path]:
    # Not under pytest's tmp root: the embedded Postgres may run as its own system user,
    # which must reach its data dir. Kept (and named at the end) if anything failed.
    path = Path(tempfile.mkdtemp(prefix="chatbus-faults-"))
    _ROOT.append(path)
    yield path
    if not _FAILED:
        shutil.rmtree(path, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if getattr(report, "failed", False):
        _FAILED.append(item.nodeid)
    return report


@pytest.fixture(scope="session")
async def system(root: Path) -> AsyncIterator[System]:
    """nats-server, Postgres, two emulators and the seven services, each a process."""
    running = System(root)
    try:
        await running.start()
        yield running
    finally:
        running.close()


@pytest.fixture
async def healthy(system: System) -> System:
    """The system with everything up (a scenario that failed may have left a part down)."""
    healed = await system.heal()
    if healed:
        print(f"\n[faults] restarted after the previous scenario: {', '.join(healed)}")
    await system.reset_emulators()
    return system


@pytest.fixture
async def bus(system: System) -> AsyncIterator[Client]:
    """An outside NATS client for reading streams and consumers."""
    async with connected(system.nats.url) as client:
        yield client


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _ROWS:
        return
    terminalreporter.section("fault suite")
    for line in table(_ROWS):
        terminalreporter.write_line(line)
    if _FAILED and _ROOT:
        terminalreporter.write_line(f"every process's output: {_ROOT[0] / 'processes.log'}")
