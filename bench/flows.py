"""Flow loading and interpreter overhead, each against a baseline in the same run.

1. Load and validate a generated 2,000-node flow (menus, gathers, branches,
   plays): our pipeline (YAML with positions → model → graph checks) against
   a bare ``yaml.safe_load`` of the same text (the floor any loader pays).
2. Interpreter overhead per node on the emulator: a flow of N ``play`` nodes
   (one STREAM FILE each) against a hand-written handler that sends the same
   N commands through the same ``Channel``; and N ``set`` nodes (no AGI at
   all), the interpreter alone.

    python bench/flows.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr import log  # noqa: E402
from ivr.agi.channel import Channel  # noqa: E402
from ivr.agi.server import FastAgiServer  # noqa: E402
from ivr.flows.interpreter import Engine  # noqa: E402
from ivr.flows.loader import load_flow  # noqa: E402
from ivr.flows.model import Flow  # noqa: E402
from ivr.flows.ports import SpeechPrompts  # noqa: E402
from ivr.testing import AsteriskEmulator  # noqa: E402


def big_flow(nodes: int) -> str:
    """A flow of ``nodes`` nodes: rounds of menu → gather → branch → play."""
    lines = ["id: big", "version: 1", "nodes:"]
    rounds = nodes // 4
    for i in range(rounds):
        following = f"m{i + 1}" if i + 1 < rounds else "bye"
        lines += [
            f"  m{i}:",
            "    type: menu",
            f'    prompt: "Round {i}: press 1 to go on, 2 to repeat"',
            "    options:",
            f"      - {{digit: 1, phrases: [next, go{i}], goto: g{i}}}",
            f"      - {{digit: 2, goto: p{i}}}",
            f"    on_failure: {following}",
            f"  g{i}:",
            "    type: gather",
            "    prompt: Enter a code",
            f"    variable: code{i}",
            f"    next: b{i}",
            f"    on_failure: {following}",
            f"  b{i}:",
            "    type: branch",
            "    conditions:",
            f"      - {{if: 'len(code{i}) > 3 and code{i} != \"0000\"', goto: {following}}}",
            f"    else: p{i}",
            f"  p{i}:",
            "    type: play",
            "    file: beep",
            f"    next: {following}",
        ]
    lines += ["  bye:", "    type: hangup"]
    return "\n".join(lines) + "\n"


def timed(function: Any, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def chain(kind: str, nodes: int) -> Flow:
    lines = ["id: chain", "nodes:"]
    for i in range(nodes):
        following = f"n{i + 1}" if i + 1 < nodes else "bye"
        body = "    file: beep" if kind == "play" else f"    variables: {{v{i}: {i}}}"
        lines += [f"  n{i}:", f"    type: {kind}", body, f"    next: {following}"]
    lines += ["  bye:", "    type: hangup"]
    return load_flow("chain.yaml", "\n".join(lines) + "\n")


async def per_node(kind: str, nodes: int) -> tuple[float, float]:
    """Seconds per node: (interpreter, hand-written handler doing the same AGI)."""
    flow = chain(kind, nodes)
    engine = Engine(flows={}.get, prompts=SpeechPrompts(Path("/tmp/ivr-bench-prompts")))
    timings: dict[str, float] = {}

    async def interpreted(channel: Channel) -> None:
        start = time.perf_counter()
        await engine.run(channel, flow)
        timings["flow"] = time.perf_counter() - start

    async def by_hand(channel: Channel) -> None:
        start = time.perf_counter()
        await channel.answer()
        variables: dict[str, int] = {}
        for i in range(nodes):
            if kind == "play":
                await channel.stream_file("beep")
            else:
                variables[f"v{i}"] = i
        await channel.hangup()
        timings["hand"] = time.perf_counter() - start

    server = FastAgiServer(port=0)
    server.route("flow", interpreted)
    server.route("hand", by_hand)
    await server.start()
    try:
        emulator = AsteriskEmulator(port=server.port)
        for script in ("flow", "hand"):
            await emulator.call(script)
    finally:
        await server.drain(1)
    return timings["flow"] / nodes, timings["hand"] / nodes


def main() -> None:
    log.configure(json=True, level="error")
    text = big_flow(2000)
    path = Path("/tmp/ivr-bench-big.yaml")
    path.write_text(text)
    ours = timed(lambda: load_flow(path))
    floor = timed(lambda: yaml.safe_load(text))
    flow = load_flow(path)
    print(f"machine: 2 cores, Python {sys.version.split()[0]}")
    print(f"2,000-node flow ({len(flow.nodes)} nodes, {len(text) / 1024:.0f} KiB of YAML)")
    print(f"  load + validate + graph checks   {ours * 1000:8.1f} ms")
    print(f"  yaml.safe_load alone (floor)      {floor * 1000:8.1f} ms")
    print(f"  ratio ours/floor                  {ours / floor:8.2f}")
    for kind, nodes in (("set", 2000), ("play", 500)):
        flow_s, hand_s = asyncio.run(per_node(kind, nodes))
        print(f"{nodes} '{kind}' nodes on the emulator (waits skipped)")
        print(f"  interpreter, per node             {flow_s * 1e6:8.1f} µs")
        print(f"  hand-written handler, per node    {hand_s * 1e6:8.1f} µs")
        print(f"  interpreter overhead per node     {(flow_s - hand_s) * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
