"""Hot reload: a good edit swaps the flow, a bad one is refused, running calls keep theirs."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from ivr.agi.server import FastAgiServer
from ivr.app import flow_handler
from ivr.flows.interpreter import Engine
from ivr.flows.ports import SpeechPrompts
from ivr.flows.registry import FlowRegistry
from ivr.testing import AsteriskEmulator, Keys

FLOW = """\
id: hello
version: {version}
nodes:
  ask:
    type: menu
    prompt: "{prompt}"
    options:
      - {{digit: 1, goto: bye}}
    on_failure: bye
  bye:
    type: hangup
"""


def write(path: Path, version: int, prompt: str) -> None:
    path.write_text(FLOW.format(version=version, prompt=prompt))
    stamp = time.time() + version  # make sure the modification time moves on
    os.utime(path, (stamp, stamp))


def test_good_edit_swaps_bad_edit_is_refused(tmp_path: Path) -> None:
    """Only a flow that passes its checks replaces the one being served."""
    path = tmp_path / "hello.yaml"
    write(path, 1, "Version one")
    registry = FlowRegistry(tmp_path)
    assert registry.reload() == []
    first = registry.get("hello")
    assert first is not None and first.version == 1
    write(path, 2, "Version two")
    assert registry.reload() == [] and registry.get("hello").version == 2  # type: ignore[union-attr]
    path.write_text("id: hello\nnodes:\n  ask:\n    type: menu\n")
    problems = registry.reload()
    assert problems and "missing 'options'" in str(problems[0])
    assert registry.get("hello").version == 2  # type: ignore[union-attr]
    path.unlink()
    registry.reload()
    assert registry.get("hello") is None


async def test_running_call_keeps_its_version(tmp_path: Path) -> None:
    """A call that started on version 1 finishes on it; the next call hears version 2."""
    flows = tmp_path / "flows"
    flows.mkdir()
    write(flows / "hello.yaml", 1, "Version one")
    registry = FlowRegistry(flows)
    registry.reload()
    engine = Engine(flows=registry.get, prompts=SpeechPrompts(tmp_path / "prompts"))
    traces = []

    async def handler(channel):  # type: ignore[no-untyped-def]
        flow = registry.get(channel.env.script)
        assert flow is not None
        traces.append(await engine.run(channel, flow))

    server = FastAgiServer(default=handler, port=0)
    await server.start()
    emulator = AsteriskEmulator(port=server.port, speed=1.0, sound_dirs=[tmp_path / "prompts"])
    try:
        first = asyncio.ensure_future(emulator.call("hello", actions=[Keys("1", after=1.5)]))
        await asyncio.sleep(0.8)  # the first call is in its menu now
        write(flows / "hello.yaml", 2, "Version two")
        registry.reload()
        await first
        await AsteriskEmulator(port=server.port, sound_dirs=[tmp_path / "prompts"]).call(
            "hello", actions=[Keys("1")]
        )
    finally:
        await server.drain(1)
    assert [t.prompts for t in traces] == [["Version one"], ["Version two"]]


async def test_unknown_flow_takes_the_fallback(tmp_path: Path) -> None:
    """A call for a flow that is not loaded gets AGISTATUS=FAILURE, not silence."""
    registry = FlowRegistry(tmp_path)
    engine = Engine(flows=registry.get, prompts=SpeechPrompts(tmp_path))
    server = FastAgiServer(default=flow_handler(registry, engine), port=0)
    await server.start()
    try:
        result = await AsteriskEmulator(port=server.port).call("nope")
    finally:
        await server.drain(1)
    assert result.agistatus == "FAILURE" and result.exchanges == []


async def test_a_normal_end_tells_the_dialplan(tmp_path: Path) -> None:
    """A flow that ends with the caller still on the line sets IVR_DONE=1, which the
    generated dialplan checks before its fallback; a hung-up call sets nothing."""
    (tmp_path / "back.yaml").write_text(
        "id: back\nnodes:\n  hi: {type: play, say: Hello., next: out}\n  out: {type: return}\n"
    )
    (tmp_path / "bye.yaml").write_text("id: bye\nnodes:\n  bye: {type: hangup, say: Bye.}\n")
    registry = FlowRegistry(tmp_path)
    assert registry.reload() == []
    engine = Engine(flows=registry.get, prompts=SpeechPrompts(tmp_path / "prompts"))
    server = FastAgiServer(default=flow_handler(registry, engine), port=0)
    await server.start()
    emulator = AsteriskEmulator(port=server.port, sound_dirs=[tmp_path / "prompts"])
    try:
        back = await emulator.call("back")
        bye = await emulator.call("bye")
    finally:
        await server.drain(1)
    assert back.variables.get("IVR_DONE") == "1"
    assert back.commands[-1] == "SET VARIABLE IVR_DONE 1"
    assert "IVR_DONE" not in bye.variables


def test_flows_cannot_read_the_engine_secrets() -> None:
    from ivr.app import flow_environ

    seen = flow_environ(
        {"IVR_CRM_TOKEN": "t", "IVR_AMI_SECRET": "s", "IVR_API_TOKENS": "a", "HOME": "/root"}
    )
    assert seen == {"IVR_CRM_TOKEN": "t"}


MAIN = """\
id: main
version: {version}
nodes:
  billing:
    type: subflow
    flow: {target}
    next: bye
  bye: {{type: hangup}}
"""
BILLING = "id: billing\nnodes:\n  bye: {type: hangup}\n"


def put(path: Path, text: str, tick: int) -> None:
    path.write_text(text)
    stamp = time.time() + tick
    os.utime(path, (stamp, stamp))


class TestSubflowReferences:
    def test_validate_names_the_line_of_a_missing_subflow(self, tmp_path: Path) -> None:
        """`flow: biling` is a problem at its line, listing the flows there are."""
        from ivr.flows.loader import load_flows

        put(tmp_path / "main.yaml", MAIN.format(version=1, target="biling"), 1)
        put(tmp_path / "billing.yaml", BILLING, 1)
        flows, problems = load_flows([tmp_path])
        assert sorted(flows) == ["billing"]
        (problem,) = problems
        assert str(problem).startswith(f"{tmp_path / 'main.yaml'}:6:")
        assert "no flow 'biling' is loaded; flows: billing" in str(problem)

    def test_the_cli_refuses_it(self, tmp_path: Path, capsys: object) -> None:
        """`ivr validate` exits 1 on a subflow that names no flow."""
        from ivr.cli import main

        put(tmp_path / "main.yaml", MAIN.format(version=1, target="biling"), 1)
        assert main(["validate", str(tmp_path)]) == 1

    def test_a_reload_that_would_break_a_subflow_is_refused(self, tmp_path: Path) -> None:
        """An edit to a missing subflow keeps the previous version; a deleted flow that
        another still uses keeps serving until nothing uses it."""
        main_file, billing_file = tmp_path / "main.yaml", tmp_path / "billing.yaml"
        put(main_file, MAIN.format(version=1, target="billing"), 1)
        put(billing_file, BILLING, 1)
        registry = FlowRegistry(tmp_path)
        assert registry.reload() == []
        put(main_file, MAIN.format(version=2, target="biling"), 2)
        problems = registry.reload()
        assert problems and "no flow 'biling'" in str(problems[0])
        assert registry.get("main").version == 1  # type: ignore[union-attr]
        billing_file.unlink()
        problems = registry.reload()
        assert problems and "keeps serving until no flow does" in str(problems[0])
        assert registry.get("billing") is not None
        put(main_file, "id: main\nversion: 3\nnodes:\n  bye: {type: hangup}\n", 3)
        assert registry.reload() == []
        assert registry.get("main").version == 3  # type: ignore[union-attr]
        assert registry.get("billing") is None  # nothing uses it now: gone
