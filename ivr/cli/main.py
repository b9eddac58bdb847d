"""The ``ivr`` command: ``ivr serve`` runs the engine, ``ivr call`` tries a call on it.

Every subcommand is a function of parsed arguments returning an exit code;
:func:`main` is the console script and is what the tests call.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivr import __version__, log
from ivr.config import Settings, load_settings, service_urls
from ivr.errors import ConfigError

if TYPE_CHECKING:
    from ivr.flows.announcements import Notice

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    from ivr.app import serve

    settings = _settings(args)
    log.configure(
        json=None if settings.log_format == "auto" else settings.log_format == "json",
        level=settings.log_level,
    )
    if settings.event_loop == "uvloop":
        import uvloop

        uvloop.run(serve(settings))
    else:
        asyncio.run(serve(settings))
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "agi_host": args.host,
        "agi_port": args.port,
        "max_calls": args.max_calls,
        "command_timeout": args.command_timeout,
        "drain_timeout": args.drain_timeout,
        "log_format": args.log_format,
        "log_level": args.log_level,
    }
    return load_settings(overrides, config_file=args.config)


def _call(args: argparse.Namespace) -> int:
    from ivr.cli.call import place_call

    return asyncio.run(place_call(args))


def _validate(args: argparse.Namespace) -> int:
    from ivr.flows.loader import flow_files, load_flows

    paths = args.paths or [Path("dialplans")]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"ivr: no such file or folder: {missing[0]}", file=sys.stderr)
        return 2
    # The engine's HTTP services, as `ivr serve` would have them: a flow naming another
    # is refused here as it would be there.
    services = service_urls(load_settings(config_file=args.config))
    found = flow_files(paths)
    # A QA rule pack (``language:`` and ``rules:`` at the top) is checked as a pack.
    packs = [f for f in found if _is_pack(f)]
    flows, problems = load_flows([f for f in found if f not in packs], services=services)
    for path in paths:  # routing.yaml is checked as what it is
        for routing in [path] if path.name == "routing.yaml" else path.glob("routing.yaml"):
            problems += _routing_problems(routing)
    problems += [p for pack in packs for p in _pack_problems(pack)]
    for problem in problems:
        print(problem)
    files = len(found)
    print(
        f"{len(flows)} flow{'s' if len(flows) != 1 else ''} valid, "
        f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {files} file(s)",
        file=sys.stderr,
    )
    return 1 if problems else 0


def _test(args: argparse.Namespace) -> int:
    from ivr.flows.loader import load_flows
    from ivr.flows.problems import FlowError
    from ivr.flows.testing import run_file

    log.configure(json=False, level="debug" if args.verbose else "warning")
    root = args.path
    folder = root if root.is_dir() else root.parent.parent
    tests = sorted((root / "tests").glob("*.yaml")) if root.is_dir() else [root]
    # The engine's HTTP services from the settings `ivr serve` reads: the flows and the
    # tests' scripted answers name them.
    services = service_urls(load_settings(config_file=args.config))
    flows, problems = load_flows([folder], services=services)
    for problem in problems:
        print(problem)
    if not tests:
        print(f"ivr: no flow tests in {root}/tests/*.yaml", file=sys.stderr)
        return 2
    passed = failed = 0
    for path in tests:
        try:
            outcomes = asyncio.run(run_file(path, flows, services=services))
        except FlowError as exc:
            print(exc)
            failed += 1
            continue
        for outcome in outcomes:
            if outcome.passed:
                passed += 1
                print(f"PASS {path.name}: {outcome.name}")
            else:
                failed += 1
                print(f"FAIL {path.name}: {outcome.name}")
                for failure in outcome.failures:
                    print(f"     {failure}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or problems else 0


def _graph(args: argparse.Namespace) -> int:
    from ivr.flows.graph import mermaid, svg
    from ivr.flows.loader import load_flows

    flows, problems = load_flows([args.flows])
    flow = flows.get(args.flow)
    if flow is None:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"ivr: no valid flow {args.flow!r} in {args.flows}", file=sys.stderr)
        return 1
    print(mermaid(flow), end="")
    if args.svg:
        args.svg.write_text(svg(flow), encoding="utf-8")
        print(f"picture written to {args.svg}", file=sys.stderr)
    return 0


def _announcement(args: argparse.Namespace) -> int:
    from ivr.flows.ports import FileAnnouncements

    settings = load_settings(config_file=args.config)
    store = FileAnnouncements(settings.announcements_file)
    if args.state == "list":
        notices = store.notices()
        for name in sorted(notices):
            print(f"{name}: {_notice_line(notices[name], store.clock())}")
        if not notices:
            print("no announcement is switched on")
        return 0
    if not args.name:
        print("ivr: name the announcement, e.g. ivr announcement on outage", file=sys.stderr)
        return 2
    known = _announcement_names(settings.flows_dir)
    if args.name not in known and not (args.state == "off" and args.name in store.switches()):
        where = ", ".join(sorted(known)) or "none"
        print(
            f"ivr: no announcement node named {args.name!r} in {settings.flows_dir}; "
            f"known: {where}",
            file=sys.stderr,
        )
        return 2
    notice = store.switch(args.name, args.state == "on", by="ivr announcement")
    print(
        f"{args.name}: {_notice_line(notice, store.clock())} "
        "(running engines see it on the next call)"
    )
    return 0


def _notice_line(notice: Notice, now: float) -> str:
    """``on``/``off`` and what the switch holds besides (the console's words, a
    recording, flows, expiry)."""
    state = "on" if notice.live(now) else "off"
    extra = []
    if notice.on and notice.expired(now):
        extra.append("expired")
    if notice.text:
        extra.append(f"says {notice.text[:40]!r}" + ("..." if len(notice.text) > 40 else ""))
    if notice.recording:
        extra.append(f"plays {notice.recording}")
    if notice.flows:
        extra.append(f"flows {', '.join(notice.flows)}")
    if notice.until is not None and notice.live(now):
        until = datetime.fromtimestamp(notice.until).astimezone().isoformat(timespec="minutes")
        extra.append(f"until {until}")
    return state + (f" ({'; '.join(extra)})" if extra else "")


def _announcement_names(folder: Path) -> set[str]:
    """The names of every announcement node in the flows under ``folder``."""
    from ivr.flows.loader import load_flows
    from ivr.flows.model import Announcement

    flows, _ = load_flows([folder])
    return {
        node.name
        for flow in flows.values()
        for node in flow.nodes.values()
        if isinstance(node, Announcement)
    }


def _moment(text: str) -> datetime:
    """A time for ``ivr call --at``: ISO 8601, with or without an offset."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write a date and time, e.g. '2026-12-02 10:00' or '2026-12-02T10:00+09:00'"
        ) from None


def _duration(text: str) -> float:
    """Seconds from '1800', '30m', '1h' or '90s'."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text[-1:] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use seconds, or 30m, 1h") from None


def _keys(text: str) -> str:
    """Keys a caller can press (0-9, * and #), or ``say:WORDS`` the caller speaks."""
    if text.startswith("say:") and text[4:].strip():
        return text
    if not text or any(c not in "0123456789*#" for c in text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a phone has only 0-9, * and #; write say:WORDS for speech"
        )
    return text


def _target(text: str) -> tuple[float, float]:
    """'80/20': 80 % of calls answered within 20 s."""
    try:
        level, _, seconds = text.partition("/")
        return float(level) / 100, float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use PERCENT/SECONDS, e.g. 80/20") from None


def _staffing(args: argparse.Namespace) -> int:
    from routing.erlang import agents_needed, staffing

    if args.queue:
        from ivr.cli.routing import measured

        got = measured(args)
        if got is None:
            return 2
        args.calls, args.aht = got
        print(f"measured on {args.queue}: {args.calls:g} calls, AHT {args.aht:.0f} s")
    if args.calls is None or args.aht is None:
        print("ivr: give --calls and --aht, or --queue to measure them", file=sys.stderr)
        return 2
    level, seconds = args.target
    try:
        scheduled, best = agents_needed(
            args.calls,
            args.aht,
            args.interval,
            level,
            seconds,
            max_occupancy=args.max_occupancy,
            shrinkage=args.shrinkage,
        )
    except ValueError as exc:
        print(f"ivr: {exc}", file=sys.stderr)
        return 2
    print(f"traffic: {best.traffic:.2f} Erlangs ({args.calls:g} calls, AHT {args.aht:g} s)")
    print(f"{'agents':>7} {'P(wait)':>8} {'service':>8} {'ASA s':>8} {'occupancy':>10}")
    for agents in range(max(1, best.agents - 3), best.agents + 3):
        row = staffing(agents, args.calls, args.aht, args.interval, seconds)
        mark = "  <- needed" if agents == best.agents else ""
        print(
            f"{agents:>7} {row.wait_probability:>8.1%} {row.service_level:>8.1%} "
            f"{row.asa:>8.1f} {row.occupancy:>10.1%}{mark}"
        )
    print(
        f"{best.agents} agents on the phones meet {level:.0%} in {seconds:g} s; "
        f"schedule {scheduled} with {args.shrinkage:.0%} shrinkage"
    )
    return 0


def _routing_problems(path: Path) -> list[Any]:
    from ivr.flows.problems import FlowError
    from ivr.routing_config import load_routing

    try:
        load_routing(path)
    except FlowError as exc:
        return list(exc.problems)
    return []


def _is_pack(path: Path) -> bool:
    """A QA rule pack: ``language:`` and ``rules:`` as top-level keys."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    keys = {line.split(":", 1)[0] for line in text.splitlines() if line[:1].isalpha()}
    return {"language", "rules"} <= keys


def _pack_problems(path: Path) -> list[Any]:
    from speech.qa import RulePackError, load_pack

    try:
        load_pack(path)
    except RulePackError as exc:
        return list(exc.problems)
    return []


def _schema(args: argparse.Namespace) -> int:
    import json

    from ivr.flows.model import Flow

    schema = Flow.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ivr call flow"
    print(json.dumps(schema, indent=2, ensure_ascii=False))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivr", description="IVR and skill-based call-routing engine for Asterisk."
    )
    parser.add_argument("--version", action="version", version=f"ivr {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the engine (FastAGI server)",
        description="Run the engine. Settings: flags > --config file > IVR_* environment.",
    )
    serve.add_argument("--config", type=Path, help="YAML settings file")
    serve.add_argument("--host", help="FastAGI address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="FastAGI port (default 4573)")
    serve.add_argument("--max-calls", type=int, help="calls at once before refusing (default 5000)")
    serve.add_argument("--command-timeout", type=float, help="seconds to wait for a reply")
    serve.add_argument("--drain-timeout", type=float, help="seconds calls get to end on SIGTERM")
    serve.add_argument("--log-format", choices=["auto", "json", "console"])
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=_serve)

    call = commands.add_parser(
        "call",
        help="call a flow from the terminal: prompts as text, keys typed as DTMF",
        description=(
            "Run FLOW over real FastAGI with the Asterisk emulator playing the caller. "
            "Type keys and Enter as the caller would press them; 'h' hangs up. "
            "With --press the caller's keys are given up front."
        ),
    )
    call.add_argument("flow", help="a flow id from the flows folder (e.g. main)")
    call.add_argument("--flows", type=Path, default=Path("dialplans"), help="flows folder")
    call.add_argument(
        "--press",
        nargs="+",
        metavar="KEYS",
        type=_keys,
        help="answers to each prompt, e.g. 1 1 12345# 0000, or say:WORDS (spoken)",
    )
    call.add_argument("--engine", metavar="HOST:PORT", help="call a running engine instead")
    call.add_argument("--callerid", default="5551234")
    call.add_argument("--language", help="start in this language")
    call.add_argument("--fast", action="store_true", help="skip waits instead of real time")
    call.add_argument(
        "--at",
        metavar="TIME",
        type=_moment,
        help="the time the call happens (business hours): '2026-12-02 10:00' in the flow's "
        "hours timezone, or with an offset ('2026-12-02T10:00+09:00')",
    )
    call.set_defaults(func=_call)

    _flow_commands(commands)
    return parser


def _flow_commands(commands: Any) -> None:
    """validate, test, graph, announcement, agents, schema."""
    validate = commands.add_parser(
        "validate",
        help="check call flows; print file:line:col for every problem",
        description="Check flows (default: dialplans/). Exit 1 when any has a problem.",
    )
    validate.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    validate.add_argument(
        "--config", type=Path, help="YAML settings file (the engine's services, IVR_SERVICES)"
    )
    validate.set_defaults(func=_validate)

    test = commands.add_parser(
        "test",
        help="run the flow tests in PATH/tests/*.yaml (default dialplans/)",
        description="Run flow tests: scripted callers against the real engine and emulator.",
    )
    test.add_argument("path", nargs="?", type=Path, default=Path("dialplans"))
    test.add_argument("-v", "--verbose", action="store_true", help="log every AGI exchange")
    test.add_argument(
        "--config", type=Path, help="YAML settings file (the engine's services, IVR_SERVICES)"
    )
    test.set_defaults(func=_test)

    graph = commands.add_parser(
        "graph", help="print a flow as Mermaid text; --svg writes a picture"
    )
    graph.add_argument("flow", help="a flow id")
    graph.add_argument("--flows", type=Path, default=Path("dialplans"), help="flows folder")
    graph.add_argument("--svg", type=Path, metavar="FILE", help="also draw it as SVG")
    graph.set_defaults(func=_graph)

    announce = commands.add_parser(
        "announcement", help="switch an announcement (an outage notice) on or off"
    )
    announce.add_argument("state", choices=["on", "off", "list"])
    announce.add_argument("name", nargs="?", help="the announcement's name in the flows")
    announce.add_argument("--config", type=Path, help="YAML settings file")
    announce.set_defaults(func=_announcement)

    agents = commands.add_parser("agents", help="agents: list, login, pause, skills, staffing")
    agent_commands = agents.add_subparsers(dest="agents_command", required=True)
    staff = agent_commands.add_parser(
        "staffing",
        help="agents needed to meet a service-level target (Erlang C)",
        description="Erlang C from call volume and average handle time.",
    )
    staff.add_argument("--calls", type=float, help="calls offered in the interval")
    staff.add_argument("--interval", type=_duration, default=1800.0, help="e.g. 30m (default)")
    staff.add_argument("--aht", type=_duration, help="average handle time, e.g. 4m")
    staff.add_argument(
        "--queue", help="measure calls and AHT of this queue over the last --interval instead"
    )
    staff.add_argument("--config", type=Path, help="YAML settings file (with --queue)")
    staff.add_argument("--target", type=_target, default=(0.8, 20.0), help="e.g. 80/20 (default)")
    staff.add_argument("--shrinkage", type=float, default=0.0, help="e.g. 0.3 for 30 %%")
    staff.add_argument("--max-occupancy", type=float, default=1.0, help="e.g. 0.85")
    staff.set_defaults(func=_staffing)
    from ivr.cli.routing import add_commands

    add_commands(commands, agent_commands)
    from ivr.cli.deploy import add_commands as add_deploy_commands

    add_deploy_commands(commands)
    from ivr.cli.supervise import add_commands as add_supervise_commands

    add_supervise_commands(commands)
    from ivr.cli.speech import add_commands as add_speech_commands

    add_speech_commands(commands)
    from ivr.cli.users import add_commands as add_users_commands

    add_users_commands(commands)
    from ivr.cli.qa import add_commands as add_qa_commands

    add_qa_commands(commands)

    schema = commands.add_parser("schema", help="print the JSON Schema of call flows (for editors)")
    schema.set_defaults(func=_schema)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"ivr: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
