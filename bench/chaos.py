"""The chaos scenarios of issue 12 at full size (tests/chaos/ runs them CI-sized).

Each runs the real engine process, a real redis-server and the Asterisk emulator
over TCP, calls going through the entry context of the rendered extensions.conf:

1. ``engine``: kill -9 of the engine with 500 calls up;
2. ``redis-aof`` / ``redis-none``: kill -9 of redis-server under load, restarted;
3. ``ami``: the AMI link cut for 10 s during calls;
4. ``two-engines``: one of two engines killed under load;
5. ``disk-ro`` / ``disk-full``: var/ read-only or full.

    .venv/bin/python bench/chaos.py               # every scenario, full size
    .venv/bin/python bench/chaos.py --quick       # the CI sizes
    .venv/bin/python bench/chaos.py --only engine --only ami

Prints one line per scenario: PASS or FAIL (with what broke) and its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.chaos import scenarios  # noqa: E402
from tests.chaos.rig import short_root  # noqa: E402

Scenario = Callable[[Path], Awaitable[dict[str, Any]]]

FULL: dict[str, Scenario] = {
    "engine": lambda root: scenarios.engine_killed(root, calls=500, agents=50),
    "redis-aof": lambda root: scenarios.redis_killed(
        root, persistence="aof", agents=20, rate=20.0, seconds=10.0, down=2.0, talk=3.0
    ),
    "redis-none": lambda root: scenarios.redis_killed(
        root, persistence="none", agents=20, rate=20.0, seconds=10.0, down=2.0, talk=3.0
    ),
    "ami": lambda root: scenarios.ami_dropped(root, drop=10.0, talk=16.0),
    "two-engines": lambda root: scenarios.engine_of_two_killed(
        root, agents=20, rate=20.0, seconds=15.0, talk=2.0
    ),
    "disk-ro": lambda root: scenarios.disk_unwritable(root, how="read_only", calls=200),
    "disk-full": lambda root: scenarios.disk_unwritable(root, how="full", calls=200),
}

QUICK: dict[str, Scenario] = {
    "engine": lambda root: scenarios.engine_killed(root, calls=50, agents=10),
    "redis-aof": lambda root: scenarios.redis_killed(
        root, persistence="aof", agents=5, rate=6.0, seconds=4.0, down=1.0, talk=2.0
    ),
    "redis-none": lambda root: scenarios.redis_killed(
        root, persistence="none", agents=5, rate=6.0, seconds=4.0, down=1.0, talk=2.0
    ),
    "ami": lambda root: scenarios.ami_dropped(root, drop=6.0, talk=10.0),
    "two-engines": lambda root: scenarios.engine_of_two_killed(
        root, agents=6, rate=5.0, seconds=6.0
    ),
    "disk-ro": lambda root: scenarios.disk_unwritable(root, how="read_only", calls=20),
    "disk-full": lambda root: scenarios.disk_unwritable(root, how="full", calls=20),
}


async def run(name: str, scenario: Scenario) -> bool:
    if name.startswith("disk") and (why := scenarios.namespaces_work()):
        print(f"{name:12} SKIP  {why}", flush=True)
        return True
    started = time.monotonic()
    with short_root() as root:
        try:
            figures = await scenario(root)
        except AssertionError as exc:
            took = time.monotonic() - started
            print(f"{name:12} FAIL  ({took:.0f} s) {str(exc)[:1500]}", flush=True)
            return False
    took = time.monotonic() - started
    print(f"{name:12} PASS  ({took:.0f} s) {json.dumps(figures, default=str)}", flush=True)
    return True


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="the CI sizes")
    parser.add_argument("--only", action="append", choices=sorted(FULL), help="these only")
    args = parser.parse_args(argv)
    table = QUICK if args.quick else FULL
    names = args.only or list(table)
    load = os.getloadavg()
    print(f"# {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    results = [await run(name, table[name]) for name in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
