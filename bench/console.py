"""The console's live data under load: 200 agents changing state every second, fanned
out to 50 WebSocket clients. Reports the update latency (from the routing script's
write to Redis, the state event's ``at``, to the message's arrival at a client:
p50, p95, p99, max) and the engine's CPU while it serves them.

Three processes on one machine, as in production: the engine (the aggregator and
the live WebSocket on uvicorn, nothing else), the clients (``websockets``, one
asyncio process for all of them) and the load (the routing store's own pause and
resume scripts, one agent every 1/200 s), against one redis-server on a Unix socket.

With ``--calls R``, calls also go through a queue of their own (``calls``, served by
``--call-agents`` agents that are not paused): R a second, each answered and completed
after ``--talk`` s, so the day's figures move all the time; ``--history N`` puts N
such calls in the day before the run (the board folds the day's events for them).

    .venv/bin/python bench/console.py                   # 200 agents, 50 clients, 30 s
    .venv/bin/python bench/console.py --calls 5 --history 5000
    .venv/bin/python bench/console.py --agents 1000 --clients 100 --deflate off
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # type: ignore[import-untyped]  # noqa: E402

from routing.config import QueueConfig  # noqa: E402
from routing.embedded import EmbeddedRedis  # noqa: E402
from routing.redis import RedisRouter  # noqa: E402
from routing.types import Agent  # noqa: E402

QUEUES = ("billing", "support", "sales", "tv", "internet")
TEAMS = ("north", "south", "east", "west")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else float("nan")


# ------------------------------------------------------------------ the engine


async def engine(url: str, deflate: bool) -> None:
    """The live data alone: aggregator + WebSocket on uvicorn; prints its port."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import HTTPConnection
    from starlette.routing import Mount

    from ivr.console import live, metrics
    from ivr.console.roles import Scope, User

    router = RedisRouter.connect(url)
    await router.start()
    board_metrics = metrics.Metrics()
    aggregator = live.Aggregator(router, metrics=board_metrics)
    await aggregator.ensure_started()
    users = {"admin": User("bench", "admin", Scope())}
    for team in TEAMS:
        users[team] = User(f"sup-{team}", "supervisor", Scope(teams=frozenset({team})))

    async def user_of(conn: HTTPConnection) -> User | None:
        return users.get(conn.cookies.get("ivr_session", ""))

    routes = live.routes(router, user_of=user_of, aggregator=aggregator)
    app = Starlette(routes=[Mount("/console", routes=routes), *metrics.routes(board_metrics)])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="off",
        ws_per_message_deflate=deflate,  # uvicorn's default (on), as the engine's API runs
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag only
        await asyncio.sleep(0.01)
    print("port", server.servers[0].sockets[0].getsockname()[1], flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the bench closes our stdin
    server.should_exit = True
    await task
    await aggregator.close()
    await router.close()


# ------------------------------------------------------------------ the clients


async def clients(port: int, count: int, warmup: float, seconds: float) -> None:
    """``count`` sockets; latencies of the agent updates that arrive in the window."""
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    totals = {"messages": 0, "bytes": 0, "snapshots": 0}
    window = [0.0, 0.0]

    async def one(started: asyncio.Event, who: str) -> None:
        seen: dict[str, float] = {}
        url = f"ws://127.0.0.1:{port}/console/ws"
        cookie = {"Cookie": f"ivr_session={who}"}
        opening = connect(url, additional_headers=cookie, max_size=None, open_timeout=30)
        async with opening as socket:
            started.set()
            async for raw in socket:
                arrived = time.time()
                message = json.loads(raw)
                if not window[0] <= arrived <= window[1]:
                    continue
                totals["messages"] += 1
                totals["bytes"] += len(raw)
                if message["type"] == "snapshot":
                    totals["snapshots"] += 1
                for kind, key, record in message.get("ops", ()):
                    if kind == "agent" and record and record["since"] != seen.get(key):
                        seen[key] = record["since"]
                        latencies.append(arrived - record["since"])

    ready = [asyncio.Event() for _ in range(count)]
    # Half the clients see everything (admins, a wall screen), half are supervisors of
    # one team each (a quarter of the agents): every message is filtered per user.
    who = ["admin" if n % 2 == 0 else TEAMS[n // 2 % len(TEAMS)] for n in range(count)]
    tasks = [asyncio.ensure_future(one(event, w)) for event, w in zip(ready, who, strict=True)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 60)
    print("connected", flush=True)
    window[0] = time.time() + warmup
    window[1] = window[0] + seconds
    await asyncio.sleep(warmup + seconds + 1.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(
        "result",
        json.dumps(
            {
                "updates": len(latencies),
                "p50": percentile(latencies, 0.50),
                "p95": percentile(latencies, 0.95),
                "p99": percentile(latencies, 0.99),
                "max": max(latencies, default=float("nan")),
                "mean": statistics.fmean(latencies) if latencies else float("nan"),
                **totals,
            }
        ),
        flush=True,
    )


# ------------------------------------------------------------------ the load


async def seed(url: str, agents: int, call_agents: int = 0, history: int = 0) -> RedisRouter:
    router = RedisRouter.connect(url)
    await router.redis.flushall()
    await router.start()
    queues = {q: QueueConfig.model_validate({"skills": {q: 1}}) for q in (*QUEUES, "calls")}
    await router.replace_queues(queues)
    await router.add_agents(
        Agent(
            f"a{i:04d}",
            f"PJSIP/{2000 + i}",
            {QUEUES[i % 5]: 5, QUEUES[(i + 1) % 5]: 3, f"team.{TEAMS[i % 4]}": 1},
            site=("seoul", "busan")[i % 2],
        )
        for i in range(agents)
    )
    for i in range(agents):
        await router.login(f"a{i:04d}")
    await router.add_agents(
        Agent(f"c{i:04d}", f"PJSIP/{4000 + i}", {"calls": 5, f"team.{TEAMS[i % 4]}": 1})
        for i in range(call_agents)
    )
    for i in range(call_agents):
        await router.login(f"c{i:04d}")
    for n in range(history):  # the day so far: calls answered and completed at once
        await one_call(router, f"h{n}", 0.0)
    return router


async def one_call(router: RedisRouter, call_id: str, talk: float) -> None:
    """A call in the ``calls`` queue, answered, completed after ``talk`` s."""
    ticket = await router.enqueue(call_id, "calls", {"calls": 1})
    assignment = await asyncio.wait_for(router.wait(ticket), 30)
    await router.connected(assignment)
    await asyncio.sleep(talk)
    await router.completed(assignment)


async def calls_load(router: RedisRouter, rate: float, talk: float, seconds: float) -> int:
    """``rate`` calls a second through the ``calls`` queue for ``seconds``."""
    if rate <= 0:
        return 0
    tasks = []
    start = time.monotonic()
    while (n := len(tasks)) < rate * seconds:
        await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
        tasks.append(asyncio.ensure_future(one_call(router, f"live{n}", talk)))
    await asyncio.gather(*tasks)
    return len(tasks)


async def load(router: RedisRouter, agents: int, rate: float, seconds: float) -> int:
    """Each agent pauses, then resumes, ``rate`` times a second, spread evenly."""
    paused = [False] * agents
    step = 1.0 / (agents * rate)
    start = time.monotonic()
    done = 0
    while (now := time.monotonic()) - start < seconds:
        due = int((now - start) / step)
        while done <= due:
            i = done % agents
            agent = f"a{i:04d}"
            await (router.resume(agent) if paused[i] else router.pause(agent, "bench"))
            paused[i] = not paused[i]
            done += 1
        await asyncio.sleep(max(0.0, start + (done) * step - time.monotonic()))
    return done


async def _line(stream: asyncio.StreamReader, prefix: str) -> str:
    """The rest of the first line that starts with ``prefix`` (log lines are skipped)."""
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise RuntimeError(f"the child process ended before saying {prefix!r}")
        if line.startswith(prefix):
            return line[len(prefix) :].strip()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="ivr-console-bench-"))
    async with EmbeddedRedis(folder / "redis") as url:
        router = await seed(url, args.agents, args.call_agents if args.calls else 0, args.history)
        me = (sys.executable, __file__)
        pipe = asyncio.subprocess.PIPE
        engine_proc = await asyncio.create_subprocess_exec(
            *me, "--engine", url, "--deflate", args.deflate, stdin=pipe, stdout=pipe
        )
        assert engine_proc.stdout is not None
        assert engine_proc.stdin is not None
        port = int(await _line(engine_proc.stdout, "port "))
        clients_proc = await asyncio.create_subprocess_exec(
            *me,
            *("--clients-of", str(port), "--clients", str(args.clients)),
            *("--warmup", str(args.warmup), "--seconds", str(args.seconds)),
            stdout=pipe,
        )
        assert clients_proc.stdout is not None
        await _line(clients_proc.stdout, "connected")
        meter, other = psutil.Process(engine_proc.pid), psutil.Process(clients_proc.pid)
        loading = asyncio.ensure_future(
            load(router, args.agents, args.rate, args.warmup + args.seconds + 0.5)
        )
        calling = asyncio.ensure_future(
            calls_load(router, args.calls, args.talk, args.warmup + args.seconds + 0.5)
        )
        await asyncio.sleep(args.warmup)
        cpu0, wall0, load0 = sum(meter.cpu_times()[:2]), time.monotonic(), os.getloadavg()
        theirs0 = sum(other.cpu_times()[:2])
        await asyncio.sleep(args.seconds)
        cpu1, wall1, load1 = sum(meter.cpu_times()[:2]), time.monotonic(), os.getloadavg()
        theirs1 = sum(other.cpu_times()[:2])
        changes = await loading
        placed = await calling
        result = json.loads(await _line(clients_proc.stdout, "result "))
        await clients_proc.wait()
        engine_proc.stdin.close()
        await engine_proc.wait()
        await router.close()
    return {
        **result,
        "changes": changes,
        "calls": placed,
        "engine_cpu": (cpu1 - cpu0) / (wall1 - wall0),
        "clients_cpu": (theirs1 - theirs0) / (wall1 - wall0),
        "load_before": load0,
        "load_after": load1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=1.0, help="changes per agent per second")
    parser.add_argument("--calls", type=float, default=0.0, help="calls per second (0: none)")
    parser.add_argument("--call-agents", type=int, default=20, help="agents taking the calls")
    parser.add_argument("--talk", type=float, default=1.0, help="seconds a call lasts")
    parser.add_argument("--history", type=int, default=0, help="calls in the day before the run")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument(
        "--deflate", choices=("on", "off"), default="on", help="permessage-deflate (uvicorn: on)"
    )
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--clients-of", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        asyncio.run(engine(args.engine, args.deflate == "on"))
        return
    if args.clients_of:
        asyncio.run(clients(args.clients_of, args.clients, args.warmup, args.seconds))
        return
    r = asyncio.run(bench(args))
    admins = (args.clients + 1) // 2
    per_team = args.agents * args.rate * args.seconds / len(TEAMS)
    expected = args.agents * args.rate * args.seconds * admins + per_team * (args.clients - admins)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(
        f"{args.agents} agents x {args.rate:g} change/s, {args.clients} WebSocket clients, "
        f"{args.seconds:g} s measured after {args.warmup:g} s; half the clients admins, half "
        f"supervisors of one team of four; permessage-deflate {args.deflate}"
    )
    if args.calls:
        print(
            f"calls: {r['calls']} at {args.calls:g}/s through the calls queue "
            f"({args.call_agents} agents, {args.talk:g} s each), {args.history:,} before"
        )
    print(
        f"updates received {r['updates']:,} of {expected:,.0f} expected; "
        f"{r['messages'] / args.seconds:,.0f} messages/s, "
        f"{r['bytes'] / args.seconds / 1e6:.2f} MB/s to all clients; snapshots {r['snapshots']}"
    )
    print(
        f"latency write -> client: p50 {r['p50'] * 1000:.0f} ms, p95 {r['p95'] * 1000:.0f} ms, "
        f"p99 {r['p99'] * 1000:.0f} ms, max {r['max'] * 1000:.0f} ms"
    )
    print(
        f"engine CPU: {r['engine_cpu'] * 100:.0f}% of one core "
        f"(the clients' process: {r['clients_cpu'] * 100:.0f}%)"
    )
    print(
        "load average (1, 5, 15 min): before "
        + ", ".join(f"{x:.2f}" for x in r["load_before"])
        + "; after "
        + ", ".join(f"{x:.2f}" for x in r["load_after"])
    )


if __name__ == "__main__":
    main()
