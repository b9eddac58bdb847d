"""Flows on calls: the demo flows' own tests, a test that must fail, and run-time details."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest
import structlog
from structlog.testing import capture_logs

from ivr.cli import main
from ivr.emulator.caller import Action
from ivr.flows.interpreter import Engine, Run, Trace
from ivr.flows.loader import load_flow, load_flows
from ivr.flows.model import Hours
from ivr.flows.nodes import is_open, luhn
from ivr.flows.ports import SpeechPrompts
from ivr.flows.run import CALLER_KEYS
from ivr.flows.testing import run_file
from ivr.testing import AsteriskEmulator, Hangup
from tests.integration.helpers.engine_rig import flows_in, serving

from ..conftest import DATA

ROOT = Path(__file__).resolve().parents[2]


def test_demo_flows_pass_their_tests(capsys: pytest.CaptureFixture[str]) -> None:
    """`ivr test dialplans` runs every demo flow test through the engine and the emulator."""
    assert main(["test", str(ROOT / "dialplans")]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "FAIL" not in out


def test_demo_flows_validate() -> None:
    flows, problems = load_flows([ROOT / "dialplans"])
    assert problems == []
    assert {"main", "billing"} <= set(flows)


def test_a_wrong_expectation_fails(capsys: pytest.CaptureFixture[str]) -> None:
    """Flow tests can fail, and say why."""
    assert main(["test", str(DATA / "flows" / "failing")]) == 1
    out = capsys.readouterr().out
    assert "PASS short.yaml: right" in out
    assert "FAIL short.yaml: wrong on purpose" in out
    assert "did not visit 'bye'" in out
    assert "no prompt containing 'goodbye'" in out
    assert "variable 'x' is None, expected '1'" in out


def test_pin_never_reaches_the_logs() -> None:
    """A sensitive gather's digits are masked in events and logs; the flow still gets them."""
    flows, _ = load_flows([ROOT / "dialplans"])
    structlog.reset_defaults()  # an earlier `ivr test` may have filtered info lines out
    with capture_logs() as logs:
        path, services = ROOT / "dialplans" / "tests" / "billing.yaml", {"demo": "http://d"}
        outcomes = asyncio.run(run_file(path, flows, services=services))
    assert outcomes[0].passed, outcomes[0].failures
    assert outcomes[0].trace is not None and outcomes[0].trace.variables["pin"] == "1234"
    gathered = [e for e in logs if e["event"] == "flow.gathered" and e["variable"] == "pin"]
    assert gathered and all(e["value"] == "***" for e in gathered)
    assert not any("1234" in str(e.get("reply", "")) for e in logs)


def test_what_callers_typed_or_said_never_reaches_the_logs() -> None:
    """Every demo flow test (menus by key and by voice, gathers, surveys, FAQs): each
    ``flow.*`` log line shows the path, with every value a caller typed or said masked,
    while the call's trace (what flow tests check) keeps them."""
    flows, _ = load_flows([ROOT / "dialplans"])
    structlog.reset_defaults()
    outcomes = []
    with capture_logs() as logs:
        for path in sorted((ROOT / "dialplans" / "tests").glob("*.yaml")):
            outcomes += asyncio.run(run_file(path, flows, services={"demo": "http://d"}))
    assert outcomes and all(o.passed for o in outcomes), [o.failures for o in outcomes]
    flow_lines = [e for e in logs if str(e["event"]).startswith("flow.")]
    caller_values = [
        (e["event"], k, e[k])
        for e in flow_lines
        for k in CALLER_KEYS & e.keys()
        if e[k] not in (None, "", "***")
    ]
    assert caller_values == []
    # It did log them masked: the demo flows' callers pressed keys at menus ...
    chosen = [e for e in flow_lines if e["event"] == "flow.menu_choice"]
    assert chosen and all(e["goto"] for e in chosen)
    assert {e.get("digit") for e in chosen} >= {"***"}  # by key ...
    assert {e.get("phrase") for e in chosen} >= {"***"}  # ... and by voice
    # ... and the traces still hold what they pressed.
    traced = [
        ev
        for o in outcomes
        if o.trace is not None
        for ev in o.trace.events
        if ev["event"] == "menu_choice"
    ]
    assert traced and any(ev.get("digit") not in (None, "***") for ev in traced)


class TestHours:
    hours = Hours.model_validate(
        {
            "type": "hours",
            "timezone": "Asia/Seoul",
            "schedule": {"mon": ["09:00-18:00"], "sat": ["22:00-24:00"]},
            "holidays": ["2026-12-28"],
            "open": "a",
            "closed": "b",
        }
    )

    @pytest.mark.parametrize(
        ("moment", "expected"),
        [
            ("2026-11-30T00:30:00+00:00", True),  # Monday 09:30 in Seoul
            ("2026-11-30T09:00:00+00:00", False),  # Monday 18:00 in Seoul: closed at 18:00
            ("2026-11-29T23:59:00+00:00", False),  # Monday 08:59 in Seoul
            ("2026-12-28T01:00:00+00:00", False),  # a holiday Monday
            ("2026-11-28T14:30:00+00:00", True),  # Saturday 23:30 in Seoul, open until 24:00
        ],
    )
    def test_is_open(self, moment: str, expected: bool) -> None:
        """Opening hours are read in the flow's timezone, holidays closed."""
        assert is_open(self.hours, datetime.fromisoformat(moment).astimezone(UTC)) is expected


def test_luhn() -> None:
    assert luhn("4539578763621486") and not luhn("4539578763621487") and not luhn("")


def test_flow_file_positions_survive_a_reload(tmp_path: Path) -> None:
    """A flow loads from disk with its file name in any problem."""
    path = tmp_path / "x.yaml"
    path.write_text("id: x\nnodes:\n  a:\n    type: hangup\n")
    assert load_flow(path).start == "a"


def test_graph_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ivr graph` prints Mermaid with labelled edges and writes a well-formed SVG."""
    import xml.etree.ElementTree as ET

    picture = tmp_path / "main.svg"
    assert main(["graph", "main", "--flows", str(ROOT / "dialplans"), "--svg", str(picture)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flowchart TD")
    assert 'n_menu -- "1 / billing / bill" --> n_billing' in out
    root = ET.fromstring(picture.read_text())
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"menu", "billing", "survey", "closed"} <= texts
    assert any("안내" in (t or "") for t in texts)  # Korean phrases drawn as text


def test_graph_is_laid_out_without_overlaps(tmp_path: Path) -> None:
    """Graphviz lays the flow out: no two boxes overlap, every label is whole and inside
    the picture, and the font can draw Hangul (a font with Korean glyphs is installed)."""
    import subprocess
    import xml.etree.ElementTree as ET

    from ivr.flows.graph import FONT, svg
    from ivr.flows.loader import load_flows

    flows, _ = load_flows([ROOT / "dialplans"])
    root = ET.fromstring(svg(flows["main"]))
    ns = "{http://www.w3.org/2000/svg}"
    boxes = []
    for group in root.iter(f"{ns}g"):
        if group.get("class") != "node":
            continue
        polygon = group.find(f"{ns}polygon")
        path = group.find(f"{ns}path")
        shape = polygon if polygon is not None else path
        assert shape is not None
        raw = shape.get("points") or shape.get("d") or ""
        cleaned = raw.replace("M", " ").replace("C", " ").replace(",", " ")
        numbers = [float(n) for n in cleaned.split()]
        xs, ys = numbers[0::2], numbers[1::2]
        boxes.append((min(xs), min(ys), max(xs), max(ys)))
    assert len(boxes) == len(flows["main"].nodes)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, f"boxes overlap: {a} {b}"
    labels = [t.text or "" for t in root.iter(f"{ns}text")]
    assert not any(label.endswith("…") and len(label) < 10 for label in labels)
    family = FONT.split(",")[0]
    listed = subprocess.run(
        ["fc-list", ":lang=ko", "family"], check=True, capture_output=True, text=True
    )
    assert family.lower().replace(" ", "") in listed.stdout.lower().replace(" ", "")


class TestObservers:
    """The engine's node observers (the console's board follows calls with them)."""

    FLOWS: ClassVar[dict[str, str]] = {
        "front": "id: front\nnodes:\n  hello: {type: play, say: Hello., next: sub}\n"
        "  sub: {type: subflow, flow: inner, next: bye}\n  bye: {type: hangup}\n",
        "inner": "id: inner\nnodes:\n  wait: {type: play, say: One moment please., next: back}\n"
        "  back: {type: return}\n",
    }

    async def _call(
        self, tmp_path: Path, watch: Callable[[Engine], None], actions: list[Action]
    ) -> list[Trace]:
        """One emulated call (uniqueid 1.5) to ``front`` on an engine ``watch`` set up."""
        registry = flows_in(tmp_path / "flows", self.FLOWS)
        engine = Engine(flows=registry.get, prompts=SpeechPrompts(tmp_path / "prompts"))
        watch(engine)
        server, traces = await serving(registry, engine)
        emulator = AsteriskEmulator(port=server.port, sound_dirs=[tmp_path / "prompts"])
        try:
            await emulator.call("front", actions=actions, uniqueid="1.5")
        finally:
            await emulator.close()
            await server.drain(1)
            await engine.aclose()
        return traces

    async def test_every_step_then_the_end_once(self, tmp_path: Path) -> None:
        """Each step is seen with its flow's id and node (a subflow's own), then the
        call leaving its flow once: also a caller who hangs up midway."""
        steps: list[tuple[str, str, str]] = []
        left: list[str] = []

        def step(run: Run, flow: str, node: str) -> None:
            steps.append((run.channel.uniqueid, flow, node))

        def watch(engine: Engine) -> None:
            engine.on_node = step
            engine.on_left = lambda run: left.append(run.trace.ended)

        await self._call(tmp_path, watch, [])
        assert steps == [("1.5", "front", "hello"), ("1.5", "front", "sub"),
                         ("1.5", "inner", "wait"), ("1.5", "inner", "back"),
                         ("1.5", "front", "bye")]  # fmt: skip
        assert left == ["hangup"]
        steps.clear()
        left.clear()
        await self._call(tmp_path, watch, [Hangup(on="STREAM FILE")])
        assert steps[0] == ("1.5", "front", "hello") and len(steps) < 5
        assert left == ["caller_hangup"]

    async def test_an_observer_that_fails_never_fails_the_call(self, tmp_path: Path) -> None:
        """A broken observer is logged; the caller's call goes on to its end."""

        def broken(run: Run, flow: str, node: str) -> None:
            raise RuntimeError("the board broke")

        def watch(engine: Engine) -> None:
            engine.on_node = broken

        with capture_logs() as logs:
            traces = await self._call(tmp_path, watch, [])
        assert traces[0].ended == "hangup" and traces[0].nodes[-1] == "bye"
        assert any(e["event"] == "flow.observer_failed" for e in logs)
