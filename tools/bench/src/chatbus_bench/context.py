"""What every scenario gets: the running stack, the emulator's controls, clients, the watch."""

from __future__ import annotations

import asyncio
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .direct import DirectArm
from .options import BenchOptions
from .procstats import ProcessWatch
from .settle import Settler
from .stack import BenchStack, Endpoints
from .upstream import Reply, UpstreamControl

QUESTION = "Benchmark question: please answer with the scripted reply."
SETTLE_MAX_SECONDS = 90.0


@dataclass
class BenchContext:
    """Shared by the scenarios of one run."""

    options: BenchOptions
    stack: BenchStack
    endpoints: Endpoints
    upstream: UpstreamControl
    direct: DirectArm
    watch: ProcessWatch
    settler: Settler
    run_id: str
    stem: str
    """File name stem of this run's results (`<date>` or `<date>-quick`)."""
    emulator_ceiling: dict[str, float] = field(default_factory=dict)
    _users: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def output_dir(self) -> Path:
        """Where results, profiles and dumps go."""
        return self.options.output_dir

    def new_users(self, count: int, label: str) -> list[str]:
        """`count` user ids never used before in this run (one per socket)."""
        return [f"bench-{self.run_id}-{label}-{next(self._users)}" for _ in range(count)]

    def tokens(self, users: list[str]) -> list[str]:
        """A dev JWT per user."""
        return [self.stack.token(user) for user in users]

    async def set_reply(self, reply: Reply) -> None:
        """What the emulator answers from now on; a short pause lets in-flight turns finish."""
        await asyncio.sleep(0.05)
        await self.upstream.set_reply(reply)

    def say(self, text: str) -> None:
        """A progress line on stderr (the report goes to stdout)."""
        print(f"bench | {text}", file=sys.stderr, flush=True)

    async def settle(self) -> float:
        """Wait until earlier turns are fully processed (see `settle.py`); seconds waited."""
        return await self.settler.settle(SETTLE_MAX_SECONDS)

    def alive_or_raise(self) -> None:
        """Fail the run when a part of the stack died (its log says why)."""
        gone = self.stack.exited()
        if gone:
            raise RuntimeError(f"{', '.join(gone)} exited during the run")
