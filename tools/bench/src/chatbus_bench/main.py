"""`chatbus-bench`: start the stack, run the scenarios, write and print the results.

    chatbus-bench                              # everything (what `make bench` runs)
    chatbus-bench --quick                      # smoke run: same paths, tiny sizes
    chatbus-bench --scenarios overhead,streams --streams 50,200

Order of a run: raise RLIMIT_NOFILE, start NATS + Postgres + emulator + services in a
fresh directory, warm both arms up and survey TCP_NODELAY, measure the emulator's own
ceiling, then the chosen scenarios; results go to `bench/results/<stem>.json` and
`.md` (printed too). Everything started is stopped, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chatbus_runtime.service import tune_garbage_collector

from . import machine
from .context import BenchContext
from .direct import DirectArm
from .machine import FileLimit
from .options import SCENARIOS, BenchOptions, build_options, parse_scenarios
from .procstats import ProcessWatch
from .report import render
from .results import DEFAULT_OUTPUT_DIR, stem_for, write
from .scenarios import ceiling, embeddings, hops, idle, overhead, streams, throughput, wakeup
from .settle import Settler
from .stack import BENCH_ENV, BenchStack, StackError
from .targets import evaluate
from .upstream import UpstreamControl


def _say(text: str) -> None:
    print(f"bench | {text}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="chatbus-bench",
        description="Benchmark chatbus against calling the provider (emulator) directly.",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, seconds")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR)
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy")
    parser.add_argument("--idle-sockets", type=int, default=None, metavar="N")
    parser.add_argument(
        "--streams", default=None, metavar="N,N", help="stream concurrencies (default 50,200,500)"
    )
    return parser.parse_args(list(argv))


def _options(args: argparse.Namespace) -> BenchOptions:
    concurrencies = [int(n) for n in args.streams.split(",")] if args.streams else None
    return build_options(
        scenarios=parse_scenarios(args.scenarios),
        quick=args.quick,
        output_dir=args.output_dir,
        profile=not args.no_profile,
        idle_sockets=args.idle_sockets,
        concurrencies=concurrencies,
    )


async def _step(
    results: dict[str, Any], name: str, ctx: BenchContext, work: Callable[[], Awaitable[Any]]
) -> None:
    """Run one scenario; a failure is recorded and the run goes on while the stack lives."""
    _say(f"{name} ...")
    started = time.monotonic()
    try:
        results[name] = await work()
    except Exception as error:
        results[name] = {"error": f"{type(error).__name__}: {error}"}
        _say(f"{name} failed: {error}")
        traceback.print_exc(file=sys.stderr)
        ctx.alive_or_raise()
    _say(f"{name} done in {time.monotonic() - started:.1f}s")


async def _run_scenarios(ctx: BenchContext, limit: FileLimit, results: dict[str, Any]) -> None:
    """Each scenario's part lands in `results` as soon as it is done (kept on Ctrl-C)."""
    chosen: dict[str, Callable[[], Awaitable[Any]]] = {
        "overhead": lambda: overhead.run(ctx),
        "streams": lambda: streams.run(ctx),
        "throughput": lambda: throughput.run(ctx),
        "idle": lambda: idle.run(ctx, limit),
        "embeddings": lambda: embeddings.run(ctx),
    }
    await _step(results, "tcp_nodelay", ctx, lambda: hops.run(ctx))
    await _step(results, "emulator_ceiling", ctx, lambda: ceiling.run(ctx))
    await _step(results, "nats_wakeup", ctx, lambda: wakeup.run(ctx))
    for name in ctx.options.scenarios:
        await _step(results, name, ctx, chosen[name])


async def _measure(
    options: BenchOptions, stack: BenchStack, stem: str, limit: FileLimit, results: dict[str, Any]
) -> None:
    endpoints = stack.endpoints
    assert endpoints is not None
    ctx = BenchContext(
        options=options,
        stack=stack,
        endpoints=endpoints,
        upstream=UpstreamControl(endpoints.emulator_url),
        direct=DirectArm(endpoints.emulator_url),
        watch=ProcessWatch(stack.pids),
        settler=await Settler.connect(endpoints.nats_url),
        run_id=uuid.uuid4().hex[:8],
        stem=stem,
    )
    try:
        await _run_scenarios(ctx, limit, results)
    finally:
        await ctx.direct.aclose()
        await ctx.upstream.aclose()
        await ctx.settler.close()


def _event_loop_runner() -> Callable[[Any], Any]:
    """uvloop when installed (as the services get it through uvicorn), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main(argv: Sequence[str]) -> int:
    """Run the benchmark; the exit code."""
    args = parse_args(argv)
    try:
        options = _options(args)
    except ValueError as error:
        _say(f"error: {error}")
        return 2
    started_at = datetime.now(UTC)
    stem = stem_for(started_at, options.quick)
    options.output_dir.mkdir(parents=True, exist_ok=True)
    limit = machine.raise_file_limit()
    run_dir = Path(tempfile.mkdtemp(prefix="chatbus-bench-"))
    log_path = run_dir / "stack.log"
    results: dict[str, Any] = {
        "schema": 1,
        "stem": stem,
        "command": "chatbus-bench " + " ".join(argv) if argv else "chatbus-bench",
        "quick": options.quick,
        "started_at": started_at.isoformat(),
        "machine": machine.describe(),
        "file_limit": limit.to_json(),
        "config": {"service_env": BENCH_ENV, "plans": asdict(options)},
    }
    code = 0
    with log_path.open("w") as log:
        stack = BenchStack(run_dir, log)
        try:
            _say(f"starting the stack in {run_dir}")
            began = time.monotonic()
            stack.start()
            _say(f"stack ready in {time.monotonic() - began:.1f}s")
            # The load client's own full collections once stopped it for 100-300 ms, in
            # whichever arm was running: tuned as the services are.
            tune_garbage_collector()
            _event_loop_runner()(_measure(options, stack, stem, limit, results))
        except (StackError, RuntimeError, OSError) as error:
            _say(f"error: {error}")
            results["error"] = str(error)
            code = 1
        except Exception as error:  # a bug in the harness: keep what was measured so far
            traceback.print_exc(file=sys.stderr)
            results["error"] = f"{type(error).__name__}: {error}"
            code = 1
        except KeyboardInterrupt:
            _say("interrupted")
            results["error"] = "interrupted"
            code = 130
        finally:
            _say("stopping the stack")
            stack.stop()
    if code:
        kept = options.output_dir / f"{stem}-stack.log"
        shutil.copyfile(log_path, kept)
        _say(f"the services' output is in {kept}")
    shutil.rmtree(run_dir, ignore_errors=True)
    results["finished_at"] = datetime.now(UTC).isoformat()
    results["machine"]["load_average_at_end"] = machine.load_average()
    results["seconds"] = round((datetime.now(UTC) - started_at).total_seconds(), 1)
    results["targets"] = [target.to_json() for target in evaluate(results)]
    json_path, markdown_path = write(results, options.output_dir, stem)
    print(render(results))
    _say(f"wrote {json_path} and {markdown_path}")
    return code


def run() -> None:
    """Console entry point."""
    raise SystemExit(main(sys.argv[1:]))
