"""``ivr agents`` and ``ivr queues``: agents' states and queue KPIs, on the engine's Redis."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from ivr.config import Settings, load_settings
from routing.errors import RoutingError
from routing.kpis import compute, summarize
from routing.redis import RedisRouter
from routing.types import DEFAULT_GROUP, Agent

__all__ = ["add_commands"]


def _url(settings: Settings) -> str | None:
    if settings.redis_url:
        return settings.redis_url
    socket = (settings.redis_dir / "redis.sock").resolve()
    return f"unix://{socket}" if socket.exists() else None


async def _with_router(args: argparse.Namespace, action: Any) -> int:
    settings = load_settings(config_file=args.config)
    url = _url(settings)
    if url is None:
        print(
            "ivr: no routing store: start the engine (ivr serve runs its own Redis) "
            "or set IVR_REDIS_URL",
            file=sys.stderr,
        )
        return 2
    router = RedisRouter.connect(url, connections=4)
    try:
        return int(await action(router))
    except RoutingError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 1
    finally:
        await router.close()


def _agents(args: argparse.Namespace) -> int:
    async def act(router: RedisRouter) -> int:
        command = args.agents_command
        if command == "list":
            rows = await router.agents()
            print(f"{'agent':<12} {'state':<11} {'endpoint':<16} {'missed':>6}  skills")
            for row in rows:
                shown = " ".join(f"{k}={v}" for k, v in sorted(row["skills"].items()))
                reason = f" ({row['reason']})" if row.get("reason") else ""
                print(
                    f"{row['id']:<12} {row['state']:<11} {row['endpoint']:<16} "
                    f"{row.get('missed', '0'):>6}  {shown}{reason}"
                )
            if not rows:
                print("no agents yet")
            return 0
        if command == "skills":
            known = {row["id"]: row for row in await router.agents()}
            if args.agent not in known:
                print(f"ivr: no agent {args.agent!r}", file=sys.stderr)
                return 2
            skills: dict[str, int] = dict(known[args.agent]["skills"])
            for pair in args.levels:
                name, _, level = pair.partition("=")
                if not level.isdigit() or not 0 <= int(level) <= 10:
                    print(f"ivr: {pair!r}: give skill=level, level 0-10", file=sys.stderr)
                    return 2
                skills[name] = int(level)
            skills = {k: v for k, v in skills.items() if v > 0}
            row = known[args.agent]
            wrap = row.get("wrap_up")
            await router.add_agents(
                [
                    Agent(
                        args.agent,
                        row["endpoint"],
                        skills,
                        languages=tuple(row.get("languages") or ()),
                        site=row.get("site") or "",
                        group=row.get("group") or DEFAULT_GROUP,
                        wrap_up=float(wrap) if wrap is not None else None,
                    )
                ]
            )
            print(f"{args.agent}: " + " ".join(f"{k}={v}" for k, v in sorted(skills.items())))
            return 0
        method = getattr(router, "end_wrap_up" if command == "ready" else command)
        pausing = command == "pause"
        change = await (method(args.agent, args.reason) if pausing else method(args.agent))
        state = await router.agent_state(args.agent)
        note = {"done": "", "pending": f" ({command} pending: when the call and wrap-up end)"}
        print(f"{args.agent}: {state}" + note.get(change.result, " (no change)"))
        if change.released is not None:
            print(
                f"{args.agent} was ringing: the caller is back at the head of the queue "
                "(the API's logout also stops the ringing at once)"
            )
        return 0

    return asyncio.run(_with_router(args, act))


def _queues(args: argparse.Namespace) -> int:
    async def act(router: RedisRouter) -> int:
        if args.queues_command == "list":
            for queue, size in sorted((await router.queue_sizes()).items()):
                print(f"{queue}: {size} waiting")
            return 0
        now = time.time()
        events = await router.events(now - args.since)
        summary = summarize(events, now=now, target=args.target)
        queues, occupancy = summary.queues, summary.occupancy
        print(f"last {args.since / 60:g} min, service level target {args.target:g} s")
        print(
            f"{'queue':<12} {'offered':>7} {'answered':>8} {'abandon':>8} {'ASA s':>6} "
            f"{'SL':>5} {'AHT s':>6} {'CSAT':>5} {'waiting':>7} {'longest':>7}"
        )

        def num(value: float | None, fmt: str) -> str:
            return "-" if value is None else format(value, fmt)

        for name, stats in sorted(queues.items()):
            print(
                f"{name:<12} {stats.offered:>7} {stats.answered:>8} "
                f"{num(stats.abandonment_rate, '.0%'):>8} {num(stats.asa, '.1f'):>6} "
                f"{num(stats.service_level, '.0%'):>5} {num(stats.aht, '.0f'):>6} "
                f"{num(stats.csat, '.0%'):>5} {stats.waiting:>7} {stats.longest_wait:>7.0f}"
            )
        print(f"agent occupancy: {num(occupancy, '.0%')}")
        for name, stats in sorted(queues.items()):
            left = {
                "overflowed": stats.overflowed,
                "timed out": stats.timed_out,
                "callbacks unanswered": stats.unanswered,
            }
            shown = ", ".join(f"{n} {k}" for k, n in left.items() if n)
            if shown:
                print(f"{name}: {shown}")
        print(
            f"IVR containment: {num(summary.containment, '.0%')} "
            f"({summary.contained} of {summary.ivr_calls} calls ended in the flow); "
            f"repeat callers: {summary.repeat_callers} of {summary.callers}"
        )
        return 0

    return asyncio.run(_with_router(args, act))


def measured(args: argparse.Namespace) -> tuple[float, float] | None:
    """Calls offered to ``args.queue`` in the last ``args.interval`` s, and their AHT."""
    found: list[tuple[float, float]] = []

    async def act(router: RedisRouter) -> int:
        now = time.time()
        queues, _ = compute(await router.events(now - args.interval), now=now)
        stats = queues.get(args.queue)
        if stats is None or stats.aht is None:
            print(f"ivr: no completed calls on {args.queue!r} in that interval", file=sys.stderr)
            return 2
        found.append((float(stats.offered), stats.aht))
        return 0

    code = asyncio.run(_with_router(args, act))
    return found[0] if code == 0 and found else None


def add_commands(commands: Any, agents: Any) -> None:
    """Add the agent state commands to ``ivr agents``, and ``ivr queues``."""
    for name, text in (
        ("list", "every agent with state, endpoint and skills"),
        ("login", "an agent starts taking calls"),
        ("logout", "an agent stops"),
        ("pause", "an agent takes a break (no calls)"),
        ("resume", "back from a break or a missed call"),
        ("ready", "end an agent's wrap-up now"),
        ("skills", "set skills: ivr agents skills alice billing=5 tv=0"),
    ):
        sub = agents.add_parser(name, help=text)
        sub.add_argument("--config", type=Path, help="YAML settings file")
        if name != "list":
            sub.add_argument("agent")
        if name == "pause":
            sub.add_argument("--reason", default="", help="e.g. lunch")
        if name == "skills":
            sub.add_argument("levels", nargs="+", metavar="SKILL=LEVEL")
        sub.set_defaults(func=_agents)
    queues = commands.add_parser("queues", help="queues: waiting calls and KPIs")
    queue_commands = queues.add_subparsers(dest="queues_command", required=True)
    for name, text in (("list", "waiting calls per queue"), ("stats", "ASA, SL, AHT, abandonment")):
        sub = queue_commands.add_parser(name, help=text)
        sub.add_argument("--config", type=Path, help="YAML settings file")
        if name == "stats":
            sub.add_argument("--since", type=float, default=3600, help="seconds back (1 h)")
            sub.add_argument("--target", type=float, default=20, help="service level seconds")
        sub.set_defaults(func=_queues)
