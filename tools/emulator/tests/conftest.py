"""Shared fixtures: one emulator per test module, fresh state and SDK clients per test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anthropic
import openai
import pytest
from chatbus_emulator import EmulatorState, RequestRecord, run_emulator


@dataclass
class Emulator:
    """A running emulator plus real SDK clients pointed at it."""

    state: EmulatorState
    url: str
    openai: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic

    def last_request(self) -> RequestRecord:
        """The most recent recorded completion request."""
        records = self.state.requests()
        assert records, "no request was recorded"
        return records[-1]

    async def wait_for(
        self, predicate: Callable[[RequestRecord], bool], within: float = 2.0
    ) -> RequestRecord:
        """Poll the last request record until ``predicate`` holds."""
        deadline = time.monotonic() + within
        while True:
            record = self.last_request()
            if predicate(record):
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {within}s: {record}")
            await asyncio.sleep(0.005)


def make_clients(url: str) -> tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic]:
    """SDK clients that never retry, so each call is exactly one emulator request."""
    return (
        openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-test-secret", max_retries=0),
        anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-test-secret", max_retries=0),
    )


@pytest.fixture(scope="module")
async def emulator_server() -> AsyncIterator[tuple[EmulatorState, str]]:
    state = EmulatorState()
    async with run_emulator(state) as url:
        yield state, url


@pytest.fixture
async def emu(emulator_server: tuple[EmulatorState, str]) -> AsyncIterator[Emulator]:
    state, url = emulator_server
    state.reset()
    oai, ant = make_clients(url)
    try:
        yield Emulator(state=state, url=url, openai=oai, anthropic=ant)
    finally:
        await oai.close()
        await ant.close()
        state.reset()
