"""Session fixtures: real NATS and Postgres, and the whole stack running against them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from .infra import Infra, provide_infra
from .stack import Stack, run_stack


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    tmp: Path = tmp_path_factory.mktemp("infra")
    with provide_infra(tmp) as provided:
        yield provided


@pytest.fixture(scope="session")
async def stack(infra: Infra) -> AsyncIterator[Stack]:
    async with run_stack(infra) as running:
        yield running
