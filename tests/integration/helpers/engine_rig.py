"""The engine side of an end-to-end test: flows written to a folder, and a FastAGI
server that runs each call's flow on an :class:`Engine` and keeps its trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ivr.agi.server import FastAgiServer
from ivr.flows.interpreter import Engine, Trace
from ivr.flows.registry import FlowRegistry


def flows_in(folder: Path, flows: dict[str, str]) -> FlowRegistry:
    """``flows`` (id -> YAML) written under ``folder`` and loaded; every one must load."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in flows.items():
        (folder / f"{name}.yaml").write_text(text)
    registry = FlowRegistry(folder)
    assert registry.reload() == []
    return registry


async def serving(registry: FlowRegistry, engine: Engine) -> tuple[FastAgiServer, list[Trace]]:
    """A started FastAGI server on a free port whose calls run ``agi://…/<flow id>``;
    the traces of finished calls, in order. Drain the server when done."""
    traces: list[Trace] = []

    async def handle(channel: Any) -> None:
        flow = registry.get(channel.env.script)
        assert flow is not None, f"no flow {channel.env.script!r}"
        traces.append(await engine.run(channel, flow))

    server = FastAgiServer(default=handle, port=0)
    await server.start()
    return server, traces
