"""The direct arm: the official `openai` SDK streaming straight from the emulator.

Configured as the inference service configures its client: the SDK's own connection
pool (up to 1000 connections, 100 kept alive), no SDK retries,
`stream_options.include_usage`. Both arms thus open and keep upstream connections alike.
"""

from __future__ import annotations

import asyncio
import time

import openai
from openai import AsyncOpenAI

from .samples import Expected, TurnSample, chunk_times_to_sample
from .upstream import MODEL


class DirectArm:
    """One SDK client shared by every concurrent stream of the arm."""

    def __init__(self, emulator_url: str) -> None:
        """`emulator_url` is the emulator's root; the SDK gets `/v1` below it."""
        self._client = AsyncOpenAI(base_url=f"{emulator_url}/v1", api_key="bench", max_retries=0)

    async def turn(self, content: str, expected: Expected, time_limit: float) -> TurnSample:
        """Stream one completion; times in ms since the request was sent."""
        times: list[float] = []
        texts: list[str] = []
        started = time.perf_counter()
        sent_at_unix = time.time()
        try:
            async with asyncio.timeout(time_limit):
                stream = await self._client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": content}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async with stream:
                    async for chunk in stream:
                        arrived = time.perf_counter()
                        for choice in chunk.choices:
                            if choice.delta.content:
                                times.append((arrived - started) * 1000)
                                texts.append(choice.delta.content)
            total: float | None = (time.perf_counter() - started) * 1000
            error = None
        except TimeoutError:
            total, error = None, "timeout"
        except openai.OpenAIError as failure:
            total, error = None, type(failure).__name__
        return chunk_times_to_sample(
            "direct",
            times,
            texts,
            None,
            total=total,
            expected=expected,
            error=error,
            sent_at_unix=sent_at_unix,
            sent_at=started,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.close()
