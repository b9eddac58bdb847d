"""Hostile flow files are refused quickly, by name and limit, and a reloading engine keeps
serving the previous version of the flow."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ivr.agi.channel import Channel
from ivr.agi.server import FastAgiServer
from ivr.flows.interpreter import Engine
from ivr.flows.loader import load_flow
from ivr.flows.ports import SpeechPrompts
from ivr.flows.problems import FlowError
from ivr.flows.registry import FlowRegistry
from ivr.testing import AsteriskEmulator, Keys

GOOD = """\
id: hello
version: 1
nodes:
  ask:
    type: menu
    prompt: "Version one"
    options:
      - {digit: 1, goto: bye}
    on_failure: bye
  bye:
    type: hangup
"""


def ten_megabytes() -> str:
    return GOOD + "# " + "x" * (10 * 1024 * 1024) + "\n"


def many_nodes(count: int) -> str:
    lines = ["id: hello", "nodes:"]
    lines += [f"  n{i}: {{type: play, say: Hi., next: n{i + 1}}}" for i in range(count - 1)]
    lines.append(f"  n{count - 1}: {{type: hangup}}")
    return "\n".join(lines) + "\n"


def one_megabyte_prompt() -> str:
    text = "word " * 200_000  # 1,000,000 characters
    return (
        "id: hello\nnodes:\n  hi:\n    type: play\n"
        f'    say: "{text}"\n    next: bye\n  bye: {{type: hangup}}\n'
    )


def refusal(path: Path) -> str:
    with pytest.raises(FlowError) as info:
        load_flow(path)
    return str(info.value)


class TestLimits:
    def test_a_10_mb_file_is_refused_before_it_is_parsed(self, tmp_path: Path) -> None:
        """The size is checked first: a 10 MB file is refused at once, naming the limit."""
        path = tmp_path / "hello.yaml"
        path.write_text(ten_megabytes())
        message = refusal(path)
        assert message.startswith(f"{path}:1:1: the file is 10,4")
        assert "a flow file holds at most 1,048,576 bytes (1 MiB)" in message

    def test_a_flow_of_100000_nodes_is_refused(self, tmp_path: Path) -> None:
        """100,000 nodes: refused quickly with the file and the limit it passes."""
        path = tmp_path / "hello.yaml"
        path.write_text(many_nodes(100_000))
        message = refusal(path)
        assert message.startswith(f"{path}:")
        assert "at most" in message

    def test_one_node_too_many_names_the_nodes_key(self, tmp_path: Path) -> None:
        """A file small enough to read but with more nodes than a flow may hold."""
        path = tmp_path / "hello.yaml"
        path.write_text(many_nodes(5_001))
        message = refusal(path)
        assert message == (
            f"{path}:2:1: nodes: 5,001 nodes; a flow holds at most 5,000: split it into subflows"
        )
        load_flow(path, many_nodes(5_000))  # the limit itself is fine

    def test_a_1_mb_prompt_is_refused_with_its_key(self, tmp_path: Path) -> None:
        path = tmp_path / "hello.yaml"
        path.write_text(one_megabyte_prompt())
        message = refusal(path)
        assert message == (
            f"{path}:5:10: nodes.hi.say: a text of 1,000,000 characters; a flow file holds "
            "at most 10,000 characters in one text; shorten it, or play a recording instead"
        )

    def test_an_alias_bomb_is_refused_without_expanding_it(self, tmp_path: Path) -> None:
        """Nine levels of ten aliases would be a billion values: refused at 100,000."""
        lines = ["id: hello", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
        path = tmp_path / "hello.yaml"
        path.write_text("\n".join(lines) + "\n")
        message = refusal(path)
        assert "more than 100,000 values once its aliases are expanded" in message
        assert message.startswith(f"{path}:")

    def test_too_many_values_stop_the_parse(self, tmp_path: Path) -> None:
        """A 1 MB list of tiny items would take seconds to compose: it stops at the limit."""
        path = tmp_path / "hello.yaml"
        path.write_text("id: [" + "a," * 500_000 + "a]\n")
        message = refusal(path)
        assert "more than 100,000 values (keys, items and texts)" in message

    def test_the_demo_flows_are_far_below_the_limits(self) -> None:
        """The limits are generous: every shipped flow loads."""
        root = Path(__file__).resolve().parents[2] / "dialplans"
        for path in root.glob("*.yaml"):
            load_flow(path)


def put(path: Path, text: str, tick: int) -> None:
    path.write_text(text)
    stamp = time.time() + tick  # the modification time moves on
    os.utime(path, (stamp, stamp))


@pytest.mark.parametrize(
    ("hostile", "says"),
    [
        (ten_megabytes, "1 MiB"),
        (lambda: many_nodes(100_000), "at most"),
        (one_megabyte_prompt, "10,000 characters in one text"),
    ],
    ids=["10MB", "100000-nodes", "1MB-prompt"],
)
async def test_a_hot_reload_keeps_serving_the_previous_version(
    tmp_path: Path, hostile: object, says: str
) -> None:
    """A hostile edit is refused with its problem; calls keep getting version one."""
    flows = tmp_path / "flows"
    flows.mkdir()
    path = flows / "hello.yaml"
    put(path, GOOD, 1)
    registry = FlowRegistry(flows)
    assert registry.reload() == []
    assert callable(hostile)
    put(path, hostile(), 2)
    problems = registry.reload()
    assert len(problems) == 1 and str(problems[0]).startswith(f"{path}:")
    assert says in str(problems[0])
    served = registry.get("hello")
    assert served is not None and served.version == 1
    engine = Engine(flows=registry.get, prompts=SpeechPrompts(tmp_path / "prompts"))
    heard: list[list[str]] = []

    async def handler(channel: Channel) -> None:
        flow = registry.get(channel.env.script)
        assert flow is not None
        heard.append((await engine.run(channel, flow)).prompts)

    server = FastAgiServer(default=handler, port=0)
    await server.start()
    try:
        await AsteriskEmulator(port=server.port, sound_dirs=[tmp_path / "prompts"]).call(
            "hello", actions=[Keys("1")]
        )
    finally:
        await server.drain(1)
    assert heard == [["Version one"]]
    assert registry.reload() == []  # the refused file is not read again until it changes
