"""Routing decisions on Redis: time to a reservation in both directions and
assignments per second, with 100, 10,000 and 75,000 agents over 500 queues and
10,000 calls waiting, against a matcher that scans every agent (the baseline),
in the same run and on the same Redis; then one routing group against two on a
real three-master Redis Cluster.

    python bench/routing.py            # about 4 minutes
    python bench/routing.py --quick    # 100 and 10,000 agents, a shorter cluster run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.config import QueueConfig  # noqa: E402
from routing.embedded import EmbeddedRedis  # noqa: E402
from routing.redis import RedisRouter  # noqa: E402
from routing.types import DEFAULT_GROUP, Agent  # noqa: E402
from tests.integration.redis_cluster import running_cluster  # noqa: E402

QUEUES = 500
SKILLS = [f"s{i}" for i in range(50)]  # each queue asks for one of 50 skills
PROFILES = 300  # agents are drawn from 300 skill profiles (teams): 5 skills each, levels 1-10
WAITING = 10_000  # calls waiting for the 200 agents with the skill "rare" (paused)
RARE = 200
ASSIGN_RUNS = 5  # assignments-alone runs per engine count (median and range reported)
ASSIGN_EACH = 3_000  # assignments per run

# The baseline: the same call -> agent decision by reading every agent's record.
NAIVE = """
local best, best_idle = nil, nil
local skills = cjson.decode(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local a = cjson.decode(all[i + 1])
  if a.state == 'available' then
    local fits = true
    for s, n in pairs(skills) do
      if (tonumber(a.skills[s]) or 0) < n then fits = false; break end
    end
    local idle = tonumber(a.idle_since)
    if fits and (best_idle == nil or idle < best_idle) then best, best_idle = a.id, idle end
  end
end
return best
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def need(queue: int) -> dict[str, int]:
    return {SKILLS[queue % len(SKILLS)]: 1 + queue % 3}


def catalogue(rng: random.Random) -> list[dict[str, int]]:
    return [{s: rng.randint(1, 10) for s in rng.sample(SKILLS, 5)} for _ in range(PROFILES)]


async def load_agents(router: RedisRouter, agents: list[Agent], group: str = DEFAULT_GROUP) -> None:
    """Create and log in ``agents`` (logins pipelined, 2,000 at a time)."""
    await router.add_agents(agents)
    if router.clients.kind == "cluster":  # redis-py's cluster pipelines refuse scripts
        for start in range(0, len(agents), 200):
            await asyncio.gather(*(router.login(a.id) for a in agents[start : start + 200]))
        return
    keys = router.keys(group)
    act = router._scripts["act"]
    await act.lib.load()  # a pipeline queues the calls: the library must be there first
    for start in range(0, len(agents), 2000):
        pipe = router.redis.pipeline(transaction=False)
        for agent in agents[start : start + 2000]:
            await act(keys=keys, args=router.argv(group, agent.id, "login", ""), client=pipe)
        await pipe.execute()


async def one_size(url: str, agents: int, trials: int, seconds: float) -> dict[str, float]:
    rng = random.Random(agents)
    router = RedisRouter.connect(url, connections=40)
    await router.redis.flushall()
    await router.start()
    profiles = catalogue(rng)
    staff = [Agent(f"a{i}", f"PJSIP/{i}", rng.choice(profiles)) for i in range(agents)]
    able = {**dict.fromkeys(SKILLS, 10), "rare": 1}
    rare = [Agent(f"r{i}", f"PJSIP/r{i}", able) for i in range(RARE)]
    started = time.perf_counter()
    await load_agents(router, staff + rare)
    for agent in rare:
        await router.pause(agent.id, "bench")
    waiting = WAITING if agents >= 10_000 else 100
    for start in range(0, waiting, 500):
        await asyncio.gather(
            *(
                router.enqueue(f"w{n}", f"q{n % QUEUES}", {**need(n), "rare": 1}, n % 4)
                for n in range(start, min(waiting, start + 500))
            )
        )
    # A centre that runs has seen its queues: one call through each first (a
    # requirement's eligible profiles are worked out when it first appears).
    for queue in range(QUEUES):
        ticket = await router.enqueue(f"warm{queue}", f"q{queue}", need(queue))
        assignment = await asyncio.wait_for(router.wait(ticket), 5)
        await router.connected(assignment)
        await router.completed(assignment)
    loaded = time.perf_counter() - started
    naive = router.redis.register_script(NAIVE)
    agent_key = router.names.group(DEFAULT_GROUP).agent

    # 1. Call -> agent: from enqueue to the engine holding the reservation, one call
    # at a time, the agent freed after.
    latencies: list[float] = []
    naive_times: list[float] = []
    for n in range(trials):
        queue = rng.randrange(QUEUES)
        t0 = time.perf_counter()
        ticket = await router.enqueue(f"c{n}", f"q{queue}", need(queue))
        assignment = await asyncio.wait_for(router.wait(ticket), 5)
        latencies.append(time.perf_counter() - t0)
        await router.connected(assignment)
        await router.completed(assignment)
        if n < (20 if agents > 10_000 else 200):
            t0 = time.perf_counter()
            await naive(keys=[agent_key], args=[json.dumps(need(queue))])
            naive_times.append(time.perf_counter() - t0)

    # 2. Agent -> best call: a paused agent able to take every waiting call resumes
    # and takes the best of them, across every queue (one script); then goes back.
    best: list[float] = []
    for n in range(min(trials, 500)):
        agent = rare[n % RARE].id
        t0 = time.perf_counter()
        change = await router.resume(agent)
        best.append(time.perf_counter() - t0)
        assert change.result == "done"
        row = await router.agent(agent, skills=False)
        assert row is not None
        assert row["state"] == "reserved"
        await router.pause(agent, "bench")  # pending: applies when the call ends
        await router.abandon(router._tickets[(DEFAULT_GROUP, int(row["ticket"]))])
        queue = n % QUEUES
        await router.enqueue(f"x{n}", f"q{queue}", {**need(queue), "rare": 1}, n % 4)

    # 3. Whole call cycles per second (enqueue, reserved, connected, completed: three
    # scripts) by one and two engine processes, 32 calls at a time each.
    rates = {}
    await router.redis.config_resetstat()
    for procs in (1, 2):
        rates[procs] = await asyncio.to_thread(cycles_per_second, url, procs, seconds)
    stats = await router.redis.info("commandstats")
    scripts = stats.get("cmdstat_fcall", {})
    cycles = sum(rates.values()) * seconds
    redis_ms = scripts.get("usec", 0) / 1000 / cycles if cycles else 0.0
    # 4. Assignments alone (enqueue -> reserved; connected and completed come later in a
    # real call, here off the clock after each run): ASSIGN_RUNS runs of 3,000, one
    # and two engine processes in turn, then one engine with Redis on a core of its
    # own; the median and the range, and the engine's CPU per assignment.
    redis_pid = int((await router.redis.info("server"))["process_id"])
    kinds = {"1": (1, 0), "2": (2, 0), "1 pinned": (1, redis_pid)}
    assigned = dict.fromkeys(kinds, 0.0)
    spread = dict.fromkeys(kinds, (0.0, 0.0))
    engine_us = dict.fromkeys(kinds, 0.0)
    if agents >= 10_000:
        runs: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
        for _ in range(ASSIGN_RUNS):
            for kind, (procs, pin) in kinds.items():
                runs[kind].append(
                    await asyncio.to_thread(assignments_per_second, url, procs, ASSIGN_EACH, pin)
                )
        for kind in kinds:
            rates_of = [rate for rate, _ in runs[kind]]
            assigned[kind] = statistics.median(rates_of)
            spread[kind] = (min(rates_of), max(rates_of))
            engine_us[kind] = statistics.median(us for _, us in runs[kind])
    await router.close()
    return {
        "agents": agents,
        "waiting": waiting,
        "load_s": loaded,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "best_call_p50_ms": percentile(best, 0.5) * 1000,
        "best_call_p99_ms": percentile(best, 0.99) * 1000,
        "naive_p50_ms": statistics.median(naive_times) * 1000,
        "naive_p99_ms": percentile(naive_times, 0.99) * 1000,
        "one_process_per_s": rates[1],
        "two_processes_per_s": rates[2],
        "redis_ms_per_cycle": redis_ms,
        "assign_only_1": assigned["1"],
        "assign_only_2": assigned["2"],
        "assign_range_1": spread["1"],
        "assign_range_2": spread["2"],
        "assign_pinned": assigned["1 pinned"],
        "assign_range_pinned": spread["1 pinned"],
        "engine_us_per_assignment": engine_us["1"],
        "engine_us_per_assignment_pinned": engine_us["1 pinned"],
    }


def _engine_process(
    url: str,
    seed: int,
    seconds: float,
    start_at: float,
    out: Any,
    limit: int = 0,
    cpus: set[int] | None = None,
) -> None:
    """One engine process: 32 concurrent calls, each enqueue -> reserved -> connected ->
    completed, until ``seconds`` pass; puts the number of calls served on ``out``.
    With ``limit``, assignments only (enqueue -> reserved, agents kept), up to ``limit``;
    puts (count, seconds taken, the process's CPU seconds meanwhile). ``cpus``: the
    cores it may run on."""
    if cpus:
        os.sched_setaffinity(0, cpus)

    async def run() -> int | tuple[int, float, float]:
        router = RedisRouter.connect(url, connections=40)
        await router.start()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.perf_counter() + seconds
        count = 0

        held = []

        async def worker(w: int) -> None:
            nonlocal count
            local = random.Random(seed * 1000 + w)
            n = 0
            while time.perf_counter() < deadline and not (limit and count >= limit):
                queue = local.randrange(QUEUES)
                ticket = await router.enqueue(f"p{seed}-w{w}-{n}", f"q{queue}", need(queue))
                assignment = await asyncio.wait_for(router.wait(ticket), 5)
                if limit:
                    held.append(assignment)
                else:
                    await router.connected(assignment)
                    await router.completed(assignment)
                count += 1
                n += 1

        began, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(w) for w in range(32)))
        took, cpu = time.perf_counter() - began, time.process_time() - cpu
        for assignment in held:  # off the clock: the agents are free for the next run
            await router.connected(assignment)
            await router.completed(assignment)
        await router.close()
        return (count, took, cpu) if limit else count

    out.put(asyncio.run(run()))


def assignments_per_second(
    url: str, procs: int, total: int, redis_pid: int = 0
) -> tuple[float, float]:
    """Enqueue -> reserved only, ``total`` assignments over ``procs`` engine processes
    (the agents stay reserved: enough of them for the run): (assignments per second,
    engine CPU µs per assignment). With ``redis_pid``, Redis runs on core 0 alone and
    the engines on the others while it lasts."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 3.0
    every = os.sched_getaffinity(0)
    engines = every - {0} if redis_pid and len(every) > 1 else None
    if engines:
        os.sched_setaffinity(redis_pid, {0})
    try:
        workers = [
            context.Process(
                target=_engine_process,
                args=(url, 100 + i, 60.0, start_at, out, total // procs, engines),
            )
            for i in range(procs)
        ]
        for worker in workers:
            worker.start()
        results = [out.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join()
    finally:
        if engines:
            os.sched_setaffinity(redis_pid, every)
    count = sum(r[0] for r in results)
    return count / max(r[1] for r in results), sum(r[2] for r in results) / count * 1e6


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


async def cluster_groups(url: str, agents: int) -> dict[int, float]:
    """Assignments per second by two engine processes on a three-master cluster, with
    every queue in one routing group, then the queues split over two groups whose
    keys live on two masters."""
    rng = random.Random(7)
    profiles = catalogue(rng)
    rates = {}
    for count in (1, 2):
        router = RedisRouter.connect(url, connections=40)
        await router.redis.flushall()
        await router.start()
        groups = ["east"]
        if count == 2:
            home = router.redis.get_node_from_key(router.names.group("east").agent)
            groups.append(
                next(
                    g
                    for g in (f"west{n}" for n in range(100))
                    if router.redis.get_node_from_key(router.names.group(g).agent) != home
                )
            )
        await router.replace_queues(
            {
                f"q{q}": QueueConfig.model_validate({"group": groups[q % count]})
                for q in range(QUEUES)
            }
        )
        for index, group in enumerate(groups):
            await load_agents(
                router,
                [
                    Agent(f"{group}-{i}", f"PJSIP/{i}", rng.choice(profiles), group=group)
                    for i in range(agents // count)
                ],
                group,
            )
            del index
        await router.close()
        rates[count], _ = await asyncio.to_thread(assignments_per_second, url, 2, agents // 10)
    return rates


async def main_async(sizes: list[int], trials: int, seconds: float, cluster_agents: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ivr-bench-"))
    rows = []
    async with EmbeddedRedis(folder / "single") as url:
        for size in sizes:
            print(f"{size} agents ...", file=sys.stderr, flush=True)
            rows.append(await one_size(url, size, trials, seconds))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print("cluster ...", file=sys.stderr, flush=True)
    with running_cluster(folder / "cluster") as cluster:
        shards = await cluster_groups(cluster.url, cluster_agents)
    print(f"machine: 2 cores, Python {sys.version.split()[0]}, redis-server on a Unix socket")
    print(
        f"{QUEUES} queues over 50 skills; agents from {PROFILES} profiles of 5 skills (levels"
        f" 1-10); a call needs one skill; {RARE} agents with every skill and 'rare'"
    )
    print(
        f"{'agents':>7} {'waiting':>8} {'p50 ms':>7} {'p99 ms':>7} {'best p50':>9} "
        f"{'best p99':>9} {'naive p50':>10} {'naive p99':>10} {'1 engine/s':>11} "
        f"{'2 engines/s':>12} {'Redis ms/call':>14} {'assign 1/s':>11} {'assign 2/s':>11}"
    )
    for r in rows:
        print(
            f"{r['agents']:>7} {r['waiting']:>8} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
            f"{r['best_call_p50_ms']:>9.2f} {r['best_call_p99_ms']:>9.2f} "
            f"{r['naive_p50_ms']:>10.2f} {r['naive_p99_ms']:>10.2f} "
            f"{r['one_process_per_s']:>11.0f} {r['two_processes_per_s']:>12.0f} "
            f"{r['redis_ms_per_cycle']:>14.3f} {r['assign_only_1']:>11.0f} "
            f"{r['assign_only_2']:>11.0f}"
        )
    for r in rows:
        if r["assign_only_1"]:
            (lo1, hi1), (lo2, hi2) = r["assign_range_1"], r["assign_range_2"]
            print(
                f"assignments alone, {r['agents']} agents, median of {ASSIGN_RUNS} runs of"
                f" {ASSIGN_EACH:,}: 1 engine {r['assign_only_1']:,.0f}/s ({lo1:,.0f}-{hi1:,.0f}),"
                f" 2 engines {r['assign_only_2']:,.0f}/s ({lo2:,.0f}-{hi2:,.0f});"
                f" 1 engine with Redis on a core of its own {r['assign_pinned']:,.0f}/s"
                f" ({r['assign_range_pinned'][0]:,.0f}-{r['assign_range_pinned'][1]:,.0f});"
                f" engine CPU per assignment {r['engine_us_per_assignment']:.0f} µs"
                f" ({r['engine_us_per_assignment_pinned']:.0f} µs pinned)"
            )
    print(
        f"3-master cluster, {cluster_agents} agents, 2 engine processes: one group "
        f"{shards[1]:.0f} assignments/s, two groups on two masters {shards[2]:.0f}/s, "
        f"ratio {shards[2] / shards[1]:.2f}"
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
    asyncio.run(main_async(sizes, args.trials, args.seconds, 10_000 if args.quick else 40_000))


if __name__ == "__main__":
    main()
