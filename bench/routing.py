"""Routing decisions on Redis: enqueue-to-reservation time and assignments per second,
with 100, 10,000 and 75,000 agents over 500 queues, against a naive matcher that scans
every agent (the baseline), in the same run and on the same Redis.

    python bench/routing.py            # about 3 minutes
    python bench/routing.py --quick    # 100 and 10,000 agents
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.embedded import EmbeddedRedis  # noqa: E402
from routing.redis_router import _LIB, RedisRouter  # noqa: E402

QUEUES = 500
SKILLS = [f"s{i}" for i in range(50)]  # each queue asks for one of 50 skills

# The baseline: the same decision by walking every agent.
NAIVE = (
    _LIB
    + """
local ns, skills = ARGV[1], cjson.decode(ARGV[2])
local best, best_idle = nil, nil
for _, aid in ipairs(redis.call('SMEMBERS', ns .. ':agents')) do
  if redis.call('HGET', ns .. ':agent:' .. aid, 'state') == 'available' then
    local fits = true
    for skill, level in pairs(skills) do
      local have = tonumber(redis.call('HGET', ns .. ':skills:' .. aid, skill) or '0')
      if have < level then fits = false; break end
    end
    if fits then
      local idle = tonumber(redis.call('HGET', ns .. ':agent:' .. aid, 'idle_since'))
      if best_idle == nil or idle < best_idle then best, best_idle = aid, idle end
    end
  end
end
return best
"""
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def load_agents(router: RedisRouter, count: int, rng: random.Random) -> None:
    upsert = router._scripts["upsert"]
    act = router._scripts["act"]
    for start in range(0, count, 2000):
        pipe = router.redis.pipeline(transaction=False)
        for i in range(start, min(count, start + 2000)):
            skills = {s: rng.randint(1, 10) for s in rng.sample(SKILLS, 5)}
            await upsert(args=[router.ns, f"a{i}", f"PJSIP/{i}", json.dumps(skills)], client=pipe)
            await act(args=[router.ns, f"a{i}", "login", ""], client=pipe)
        await pipe.execute()


async def one_size(url: str, agents: int, trials: int, seconds: float) -> dict[str, float]:
    rng = random.Random(agents)
    router = RedisRouter.connect(url, connections=40)
    await router.redis.flushall()
    await router.start()
    started = time.perf_counter()
    await load_agents(router, agents, rng)
    loaded = time.perf_counter() - started
    naive = router.redis.register_script(NAIVE)

    # 1. Time from enqueue to reserved agent, one call at a time, agents freed after.
    latencies: list[float] = []
    naive_times: list[float] = []
    for n in range(trials):
        queue = rng.randrange(QUEUES)
        need = {SKILLS[queue % len(SKILLS)]: 1 + queue % 3}
        t0 = time.perf_counter()
        ticket = await router.enqueue(f"c{n}", f"q{queue}", need)
        assignment = await asyncio.wait_for(router.wait(ticket), 5)
        latencies.append(time.perf_counter() - t0)
        await router.connected(assignment)
        await router.completed(assignment)
        if n < min(trials, 200):
            t0 = time.perf_counter()
            await naive(args=[router.ns, json.dumps(need)])
            naive_times.append(time.perf_counter() - t0)

    # 2. Assignments per second: engine processes place calls back to back, as
    # several engines share one Redis in production. One process and two.
    rates = {}
    await router.redis.config_resetstat()
    for procs in (1, 2):
        rates[procs] = await asyncio.to_thread(cycles_per_second, url, procs, seconds)
    rate = max(rates.values())
    # Redis's own time per call cycle (enqueue with its reservation, connected,
    # completed: three scripts): the store's ceiling on one Redis core, whatever
    # the number of engines feeding it.
    stats = await router.redis.info("commandstats")
    scripts = stats.get("cmdstat_evalsha", {})
    cycles = sum(rates.values()) * seconds
    redis_ms = scripts.get("usec", 0) / 1000 / cycles if cycles else 0.0
    # 3. Assignments alone (enqueue → reserved; connected and completed come later
    # in a real call), on pools large enough to keep each agent reserved for the
    # run: a tenth of the agents for one engine process, a tenth for two.
    assigned = {1: 0.0, 2: 0.0}
    if agents >= 10_000:
        for procs in (1, 2):
            assigned[procs] = await asyncio.to_thread(
                assignments_per_second, url, procs, agents // 10
            )
    await router.close()
    return {
        "agents": agents,
        "load_s": loaded,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "naive_p50_ms": statistics.median(naive_times) * 1000,
        "naive_p99_ms": percentile(naive_times, 0.99) * 1000,
        "assignments_per_s": rate,
        "one_process_per_s": rates[1],
        "two_processes_per_s": rates[2],
        "redis_ms_per_cycle": redis_ms,
        "redis_ceiling_per_s": 1000 / redis_ms if redis_ms else 0.0,
        "assign_only_1": assigned[1],
        "assign_only_2": assigned[2],
    }


def _engine_process(
    url: str, seed: int, seconds: float, start_at: float, out: Any, limit: int = 0
) -> None:
    """One engine process: 32 concurrent calls, each enqueue → reserved → connected →
    completed, until ``seconds`` pass; puts the number of calls served on ``out``.
    With ``limit``, assignments only (enqueue → reserved, agents kept), up to ``limit``;
    puts (count, seconds taken)."""

    async def run() -> int:
        router = RedisRouter.connect(url, connections=40)
        await router.start()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.perf_counter() + seconds
        count = 0

        async def worker(w: int) -> None:
            nonlocal count
            local = random.Random(seed * 1000 + w)
            n = 0
            while time.perf_counter() < deadline and not (limit and count >= limit):
                queue = local.randrange(QUEUES)
                need = {SKILLS[queue % len(SKILLS)]: 1 + queue % 3}
                ticket = await router.enqueue(f"p{seed}-w{w}-{n}", f"q{queue}", need)
                assignment = await asyncio.wait_for(router.wait(ticket), 5)
                if not limit:
                    await router.connected(assignment)
                    await router.completed(assignment)
                count += 1
                n += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(32)))
        took = time.perf_counter() - began
        await router.close()
        return (count, took) if limit else count

    out.put(asyncio.run(run()))


def assignments_per_second(url: str, procs: int, total: int) -> float:
    """Enqueue → reserved only, ``total`` assignments over ``procs`` engine processes
    (the agents stay reserved: enough of them for the run)."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 3.0
    workers = [
        context.Process(
            target=_engine_process, args=(url, 100 + i, 60.0, start_at, out, total // procs)
        )
        for i in range(procs)
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join()
    return sum(count for count, _ in results) / max(took for _, took in results)


def cycles_per_second(url: str, procs: int, seconds: float) -> float:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 3.0  # every process connected before the clock starts
    workers = [
        context.Process(target=_engine_process, args=(url, i, seconds, start_at, out))
        for i in range(procs)
    ]
    for worker in workers:
        worker.start()
    total = sum(out.get(timeout=seconds + 60) for _ in workers)
    for worker in workers:
        worker.join()
    return total / seconds


async def main_async(sizes: list[int], trials: int, seconds: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    async with EmbeddedRedis(folder) as url:
        rows = []
        for size in sizes:
            print(f"{size} agents ...", file=sys.stderr, flush=True)
            rows.append(await one_size(url, size, trials, seconds))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"machine: 2 cores, Python {sys.version.split()[0]}, redis-server on a Unix socket")
    print(f"{QUEUES} queues over 50 skills, 5 skills per agent (levels 1-10); a call needs one")
    print(
        f"{'agents':>7} {'p50 ms':>8} {'p99 ms':>8} {'naive p50':>10} {'naive p99':>10} "
        f"{'p50 naive/ours':>15} {'1 engine/s':>11} {'2 engines/s':>12} "
        f"{'Redis ms/call':>14} {'Redis ceiling/s':>16} {'assign 1/s':>11} {'assign 2/s':>11}"
    )
    for r in rows:
        ratio = r["naive_p50_ms"] / r["p50_ms"]
        print(
            f"{r['agents']:>7} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['naive_p50_ms']:>10.2f} "
            f"{r['naive_p99_ms']:>10.2f} {ratio:>15.1f} {r['one_process_per_s']:>11.0f} "
            f"{r['two_processes_per_s']:>12.0f} {r['redis_ms_per_cycle']:>14.3f} "
            f"{r['redis_ceiling_per_s']:>16.0f} {r['assign_only_1']:>11.0f} "
            f"{r['assign_only_2']:>11.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sizes", type=int, default=0, help="only the first N sizes")
    args = parser.parse_args()
    sizes = [100, 10_000] if args.quick else [100, 10_000, 75_000]
    sizes = sizes[: args.sizes] if args.sizes else sizes
    asyncio.run(main_async(sizes, args.trials, args.seconds))


if __name__ == "__main__":
    main()
