"""Loading flows: every invalid fixture yields exactly the problems it declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.cli import main
from ivr.flows.loader import load_flow
from ivr.flows.problems import FlowError

from ...conftest import DATA

INVALID = sorted((DATA / "flows" / "invalid").glob("*.yaml"))


def expected(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.removeprefix("# expect: ") for line in lines if line.startswith("# expect: ")]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_fixture(path: Path) -> None:
    """The fixture's '# expect: LINE:COL: message' lines are exactly what loading reports."""
    with pytest.raises(FlowError) as error:
        load_flow(path)
    got = [str(p).removeprefix(f"{path}:") for p in error.value.problems]
    wanted = expected(path)
    assert len(got) == len(wanted), got
    for line, want in zip(got, wanted, strict=True):
        assert line.startswith(want), f"{line!r} does not start with {want!r}"


def test_validate_command_reports_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    """`ivr validate` prints file:line:col for each problem and exits 1."""
    assert main(["validate", str(DATA / "flows" / "invalid")]) == 1
    out = capsys.readouterr().out
    assert "unknown_key.yaml:7:5: unknown key 'nxt'" in out


def test_validate_missing_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "no/such/dir"]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_schema_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`ivr schema` prints a JSON Schema an editor can use, with every node type."""
    import json

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "ivr call flow"
    assert {"Menu", "Gather", "QueueNode", "Hours"} <= set(schema["$defs"])


def test_long_flows_load() -> None:
    """A 3,000-node chain loads (the checks do not recurse per node)."""
    lines = ["id: long", "nodes:"]
    for i in range(3000):
        lines += [f"  n{i}:", "    type: set", f"    variables: {{v: {i}}}", f"    next: n{i + 1}"]
    lines += ["  n3000:", "    type: hangup"]
    assert len(load_flow("long.yaml", "\n".join(lines)).nodes) == 3001


def test_every_demo_menu_names_each_of_its_keys_in_every_language() -> None:
    """A caller is told every key a demo menu takes, in each language it speaks."""
    from ivr.flows.loader import load_flows
    from ivr.flows.model import Menu

    flows, problems = load_flows([Path(__file__).parents[3] / "dialplans"])
    assert problems == []
    for flow in flows.values():
        for name, node in flow.nodes.items():
            if not isinstance(node, Menu) or node.prompt is None:
                continue
            texts = node.prompt.values() if isinstance(node.prompt, dict) else [node.prompt]
            for text in texts:
                for option in node.options:
                    assert option.digit is None or str(option.digit) in text, (
                        f"{flow.id}.{name}: {text!r} never offers key {option.digit}"
                    )
