"""Fixtures of the provider adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from chatbus_emulator.server import run_emulator
from chatbus_emulator.state import EmulatorState


@pytest.fixture(scope="module")
async def emulator() -> AsyncIterator[tuple[EmulatorState, str]]:
    """The repo's provider emulator on a free port: its state, and its base URL."""
    state = EmulatorState()
    async with run_emulator(state) as url:
        yield state, url
