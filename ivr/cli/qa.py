"""``ivr qa run`` checks recordings against a rule pack; ``ivr qa report`` sums the engine's
QA results (``qa_result`` events) per agent and queue: scores, violations, top phrases."""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from routing.config import Duration
from routing.redis import RedisRouter

__all__ = ["add_commands", "report_rows"]


def _run(args: argparse.Namespace) -> int:
    from ivr import log
    from speech.qa import QaError, RulePackError, Transcriber, evaluate, load_pack

    log.configure(json=False, level="warning")  # stdout is the results'
    try:
        pack = load_pack(args.rules)
    except RulePackError as exc:
        print(exc, file=sys.stderr)
        return 1
    if bool(args.agent) != bool(args.caller) and not args.files:
        print("ivr: give both --agent and --caller, or mono FILEs", file=sys.stderr)
        return 2
    calls: list[dict[str, Path | None]] = [{"mono": Path(f)} for f in args.files]
    if args.agent or args.caller:
        calls.append({"agent": args.agent, "caller": args.caller})
    if not calls:
        print("ivr: nothing to check: give FILEs, or --agent and --caller", file=sys.stderr)
        return 2

    async def check() -> list[tuple[str, Any]]:
        out = []
        async with Transcriber(workers=2) as transcriber:
            for legs in calls:
                transcript = await transcriber.transcribe(pack.language, **legs)
                name = " + ".join(str(p) for p in legs.values() if p is not None)
                out.append((name, evaluate(transcript, pack, name=str(args.rules))))
        return out

    try:
        results = asyncio.run(check())
    except QaError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 1
    if args.json:
        rows = [{"file": name, "result": json.loads(r.dumps())} for name, r in results]
        print(json.dumps(rows if len(rows) > 1 else rows[0], ensure_ascii=False, indent=2))
    else:
        for name, result in results:
            print(f"== {name}")
            print(result.summary())
    return 1 if any(r.violations for _, r in results) else 0


def _since(text: str) -> float:
    """An epoch time from ``7d`` / ``12h`` / ``30m`` ago, or a date ``2026-12-01``."""
    try:
        return time.time() - float(_duration(text))
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use 7d, 12h, 30m or a date") from None


def _duration(text: str) -> float:
    from pydantic import TypeAdapter, ValidationError

    try:
        return float(TypeAdapter(Duration).validate_python(text))
    except ValidationError:
        raise ValueError(text) from None


def report_rows(
    events: list[dict[str, str]], *, queue: str | None = None, agent: str | None = None
) -> list[dict[str, Any]]:
    """Per agent and queue: calls checked, mean score, violations by rule, top phrases."""
    groups: dict[tuple[str, str], list[dict[str, str]]] = collections.defaultdict(list)
    for event in events:
        if event.get("event") != "qa_result":
            continue
        if (queue and event.get("queue") != queue) or (agent and event.get("agent") != agent):
            continue
        groups[event.get("agent", ""), event.get("queue", "")].append(event)
    rows = []
    for (who, where), found in sorted(groups.items()):
        scores = [float(e["score"]) for e in found if e.get("score")]
        violated: collections.Counter[str] = collections.Counter()
        phrases: collections.Counter[str] = collections.Counter()
        for event in found:
            for rule in json.loads(event.get("rules") or "[]"):
                if rule.get("outcome") == "violated":
                    violated[str(rule.get("id"))] += 1
                for evidence in rule.get("evidence", []):
                    if evidence.get("phrase"):
                        phrases[str(evidence["phrase"])] += 1
        rows.append(
            {
                "agent": who,
                "queue": where,
                "calls": len(found),
                "score": round(sum(scores) / len(scores), 1) if scores else None,
                "violations": sum(violated.values()),
                "violated": dict(violated.most_common()),
                "top_phrases": dict(phrases.most_common(5)),
            }
        )
    return rows


def _report(args: argparse.Namespace) -> int:
    from ivr.cli.routing import _with_router

    async def act(router: RedisRouter) -> int:
        events = [row for _, row in await router.events(args.since)]
        rows = report_rows(events, queue=args.queue, agent=args.agent)
        if args.csv:
            writer = csv.writer(sys.stdout)
            writer.writerow(["agent", "queue", "calls", "score", "violations", "violated",
                             "top_phrases"])  # fmt: skip
            for row in rows:
                writer.writerow([row["agent"], row["queue"], row["calls"],
                                 "" if row["score"] is None else row["score"], row["violations"],
                                 json.dumps(row["violated"], ensure_ascii=False),
                                 json.dumps(row["top_phrases"], ensure_ascii=False)])  # fmt: skip
            return 0
        if not rows:
            print("no QA results in that time", file=sys.stderr)
            return 0
        print(f"{'agent':<12} {'queue':<12} {'calls':>5} {'score':>6} {'viol.':>5}  top")
        for row in rows:
            score = "-" if row["score"] is None else f"{row['score']:g}"
            top = ", ".join(f"{k} x{v}" for k, v in row["violated"].items()) or "-"
            print(f"{row['agent']:<12} {row['queue']:<12} {row['calls']:>5} {score:>6} "
                  f"{row['violations']:>5}  {top}")  # fmt: skip
            if row["top_phrases"]:
                said = ", ".join(f"{k} x{v}" for k, v in row["top_phrases"].items())
                print(f"{'':<32} phrases: {said}")
        return 0

    return asyncio.run(_with_router(args, act))


def add_commands(commands: Any) -> None:
    qa = commands.add_parser("qa", help="quality checks of recorded calls: run, report")
    sub = qa.add_subparsers(dest="qa_command", required=True)
    run = sub.add_parser(
        "run",
        help="check recordings against a rule pack",
        description="Transcribe with Vosk (free-form) and apply the pack. A FILE is a mono "
        "mix (speaker any); --agent and --caller give a call's two legs. Exit 1 on a "
        "violation.",
    )
    run.add_argument("files", nargs="*", type=Path, metavar="FILE")
    run.add_argument("--rules", type=Path, required=True, metavar="PACK", help="qa/ko.yaml")
    run.add_argument("--agent", type=Path, metavar="A.wav", help="the agent's leg (t())")
    run.add_argument("--caller", type=Path, metavar="C.wav", help="the caller's leg (r())")
    run.add_argument("--json", action="store_true", help="the results as JSON")
    run.set_defaults(func=_run)
    report = sub.add_parser(
        "report",
        help="scores, violations and top phrases per agent and queue",
        description="From the engine's qa_result events (its Redis).",
    )
    report.add_argument("--since", type=_since, default="7d", help="7d (default), 12h, a date")
    report.add_argument("--queue")
    report.add_argument("--agent")
    report.add_argument("--csv", action="store_true", help="CSV on standard output")
    report.add_argument("--config", type=Path, help="YAML settings file")
    report.set_defaults(func=_report)
