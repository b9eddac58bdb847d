"""100,000 calls through one engine process: nothing may grow (issue 12).

The real engine (``ivr serve``) with a real redis-server takes calls from the
Asterisk emulator over TCP, ``workers`` at a time, back to back, waits skipped:
each call hears a greeting from the prompt cache, waits in a queue, is put
through to an agent (``EXEC Dial``, answered) and hears goodbye; routing runs on
Redis for every call. The load stops three times (after a warm-up, at half way
and at the end); with no call up the engine's open file descriptors and RSS
(from /proc) and its asyncio tasks are read. The task count comes from a
SIGUSR1 handler that the engine's launcher installs before it runs ``ivr
serve`` (``python -c``, no change to the engine): it writes
``len(asyncio.all_tasks())`` to a file.

    .venv/bin/python bench/soak.py                 # 100,000 calls
    .venv/bin/python bench/soak.py --calls 20000 --workers 50

Prints the three samples and the growth from the first to the last; fails when
descriptors or tasks grew, or RSS grew by more than ``--rss-slack`` MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.testing import AsteriskEmulator, DialOutcome  # noqa: E402
from tests.chaos.rig import (  # noqa: E402
    Dialplan,
    EngineProcess,
    RedisServer,
    free_port,
    short_root,
    until,
    write_setup,
)

#: Runs the engine as ``ivr serve`` does, with a SIGUSR1 handler that writes the
#: number of asyncio tasks of the running loop to $IVR_SOAK_STATS.
LAUNCHER = r"""
import asyncio, os, signal, sys

def tasks(signum, frame):
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    count = len(asyncio.all_tasks(loop))
    fd = os.open(os.environ["IVR_SOAK_STATS"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, str(count).encode())
    os.close(fd)

signal.signal(signal.SIGUSR1, tasks)

if os.environ.get("IVR_SOAK_TRACE"):
    import tracemalloc
    tracemalloc.start(8)
    snapshots = []

    def trace(signum, frame):
        import gc
        gc.collect()  # what cycles still hold is garbage, not growth
        snapshots.append(tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]))
        if len(snapshots) > 1:
            top = snapshots[-1].compare_to(snapshots[0], "traceback")[:8]
            with open(os.environ["IVR_SOAK_TRACE"], "a") as out:
                for stat in top:
                    out.write(f"{stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} blocks\n")
                    out.write("".join(f"    {line}\n" for line in stat.traceback.format()[-8:]))
                out.write("--\n")

    signal.signal(signal.SIGUSR2, trace)
from ivr.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _forget(stats: Path) -> None:
    stats.unlink(missing_ok=True)


def _read_count(stats: Path) -> int | None:
    try:
        text = stats.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text else None


async def tasks_of(engine: EngineProcess, stats: Path) -> int:
    _forget(stats)
    os.kill(engine.pid, signal.SIGUSR1)
    await until(lambda: _read_count(stats) is not None, "the task count", 10)
    return _read_count(stats) or 0


async def sample(
    name: str, engine: EngineProcess, stats: Path, redis: RedisServer, calls: int
) -> dict[str, Any]:
    """The engine at rest: no call up (the load is paused), its leftovers given time."""
    await asyncio.sleep(2.0)
    if "IVR_SOAK_TRACE" in engine.env:  # a tracemalloc snapshot (compared with the first)
        os.kill(engine.pid, signal.SIGUSR2)
        await asyncio.sleep(3.0)
    client = redis.client()
    try:
        info = await client.info("memory")
    finally:
        await client.aclose()
    row = {
        "at": name,
        "calls": calls,
        "fds": engine.fds(),
        "tasks": await tasks_of(engine, stats),
        "rss_mb": round(engine.rss_mb(), 1),
        "engine_cpu_s": round(engine.cpu_seconds(), 1),
        "redis_mb": round(int(info["used_memory"]) / 2**20, 1),
    }
    print(
        f"{name:>7}: {calls:>7} calls  fds {row['fds']:>4}  tasks {row['tasks']:>4}  "
        f"rss {row['rss_mb']:>6} MB  engine cpu {row['engine_cpu_s']:>7} s  "
        f"redis {row['redis_mb']} MB",
        flush=True,
    )
    return row


async def soak(
    calls: int, workers: int, agents: int, rss_slack: float, trace: Path | None = None
) -> int:
    with short_root("ivrs-") as root:
        port = free_port()
        write_setup(root, agents=agents, port=port)
        stats = root / "tasks"
        redis = RedisServer(root / "redis", "none")
        engine = EngineProcess(
            root,
            port=port,
            redis_url=redis.url,
            keep_lines=200,
            argv_prefix=("-c", LAUNCHER),
            IVR_LOG_LEVEL="info",
            IVR_SOAK_STATS=str(stats),
        )
        if trace is not None:
            engine.env["IVR_SOAK_TRACE"] = str(trace)
        await redis.start()
        try:
            await engine.start()
            dialplan = Dialplan(root / "deploy.yaml")
            emulator = AsteriskEmulator(
                port=port,
                speed=None,
                sound_dirs=[root / "var" / "prompts"],
                default_dial=DialOutcome("ANSWER", ring=0.5, talk=30.0),
            )
            outcomes: dict[str, int] = {}
            placed = 0

            async def worker(until_count: int) -> None:
                nonlocal placed
                while placed < until_count:
                    placed += 1
                    outcome = await dialplan.call(emulator)
                    path = outcome.path if outcome.result.dialled else f"{outcome.path}-nodial"
                    outcomes[path] = outcomes.get(path, 0) + 1

            async def up_to(count: int) -> float:
                started = time.perf_counter()
                await asyncio.gather(*(worker(count) for _ in range(workers)))
                return time.perf_counter() - started

            warm = max(500, calls // 100)
            took = await up_to(warm)
            rows = [await sample("start", engine, stats, redis, placed)]
            took += await up_to(calls // 2)
            rows.append(await sample("middle", engine, stats, redis, placed))
            took += await up_to(calls)
            rows.append(await sample("end", engine, stats, redis, placed))
        finally:
            await engine.stop()
            await redis.stop()
    first, last = rows[0], rows[-1]
    grown = {k: round(last[k] - first[k], 1) for k in ("fds", "tasks", "rss_mb")}
    print(f"calls: {placed:,} in {took:.0f} s = {placed / took:,.0f} calls/s; outcomes {outcomes}")
    print(f"growth start -> end: {json.dumps(grown)}")
    flat = grown["fds"] <= 0 and grown["tasks"] <= 0 and grown["rss_mb"] <= rss_slack
    expected = {"hangup": placed}
    print("flat" if flat else "NOT FLAT", "" if outcomes == expected else f"(outcomes {outcomes})")
    return 0 if flat and outcomes == expected else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=50, help="calls up at once")
    parser.add_argument("--agents", type=int, default=60)
    parser.add_argument(
        "--rss-slack", type=float, default=8.0, help="MB of RSS growth still called flat"
    )
    parser.add_argument(
        "--trace-memory",
        type=Path,
        help="also run tracemalloc in the engine and append its growth at each sample here",
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"# {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return asyncio.run(
        soak(
            args.calls,
            args.workers,
            args.agents,
            args.rss_slack,
            args.trace_memory.resolve() if args.trace_memory else None,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
