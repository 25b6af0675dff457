"""Session fixtures: real NATS and Postgres, and the whole stack running against them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from chatbus_cli.embedded import EmbeddedNats, free_port

from .infra import Infra, provide_infra
from .stack import Stack, run_stack


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    # Not under pytest's tmp root: a second pytest session resets that to 0700, and the
    # embedded Postgres runs as its own system user, which must reach its data dir.
    tmp = Path(tempfile.mkdtemp(prefix="chatbus-test-"))
    try:
        with provide_infra(tmp) as provided:
            yield provided
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    async with run_stack(infra) as running:
        yield running


@pytest.fixture
def own_nats() -> Iterator[EmbeddedNats]:
    """A nats-server of the test's own (fixed port, so a restart keeps its clients)."""
    root = Path(tempfile.mkdtemp(prefix="chatbus-own-nats-"))
    try:
        with EmbeddedNats(root / "nats", port=free_port("127.0.0.1")) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)
