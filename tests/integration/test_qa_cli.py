"""``ivr qa run`` on espeak-ng recordings made now (real Vosk), ``ivr qa report`` on qa_result
events in a real Redis, and ``ivr validate`` on rule packs, all through ``main([...])``."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import wave
from pathlib import Path

import pytest

from ivr.cli import main
from ivr.emulator.caller import synthesize
from routing.redis import RedisRouter

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "qa" / "ko.yaml"

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


def _wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm)
    return path


@needs_espeak
class TestQaRun:
    def test_mono_file_as_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A mono mix: speaker any, so agent-only rules are unverifiable; dead air is seen."""
        pcm = (
            synthesize("안녕하세요 안내 센터입니다") + bytes(16000 * 10) + synthesize("감사합니다")
        )
        code = main(["qa", "run", str(_wav(tmp_path / "mix.wav", pcm)), "--rules", str(PACK),
                     "--json"])  # fmt: skip
        result = json.loads(capsys.readouterr().out)["result"]
        rules = {r["id"]: r for r in result["rules"]}
        assert rules["dead-air"]["outcome"] == "violated"
        assert rules["greeting"]["outcome"] == "unverifiable"  # whose words: unknown
        assert code == 1  # a violation

    def test_two_legs(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--agent and --caller: the legs apart, a summary per rule in words."""
        agent = _wav(tmp_path / "a.wav", synthesize("안녕하세요") + bytes(16000 * 3))
        caller = _wav(tmp_path / "c.wav", bytes(16000 * 2) + synthesize("반품 안내"))
        code = main(["qa", "run", "--agent", str(agent), "--caller", str(caller),
                     "--rules", str(PACK)])  # fmt: skip
        out = capsys.readouterr().out
        assert "dead-air" in out and "score" in out
        assert code in (0, 1)

    def test_bad_pack(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A pack with a mistake: file:line:col, and exit 1."""
        bad = tmp_path / "ko.yaml"
        bad.write_text("language: ko\nrules:\n  - {id: x, must_say: 감사, speaker: boss}\n")
        assert main(["qa", "run", str(bad), "--rules", str(bad)]) == 1
        assert f"{bad}:3:" in capsys.readouterr().err


def _result(call: str, agent: str, queue: str, score: str, violated: list[str]) -> dict[str, str]:
    rules = [{"id": "closing", "outcome": "violated" if "closing" in violated else "met",
              "evidence": [{"phrase": "감사합니다", "start": 1.0, "end": 2.0}]},
             {"id": "dead-air", "outcome": "violated" if "dead-air" in violated else "met",
              "evidence": []}]  # fmt: skip
    text = json.dumps(rules, ensure_ascii=False)
    return {"call": call, "agent": agent, "queue": queue, "score": score,
            "violations": ",".join(violated), "rules": text}  # fmt: skip


class TestQaReport:
    def test_per_agent_and_queue(
        self, redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Scores averaged, violations counted by rule, phrases, filters and CSV."""

        async def fill() -> None:
            router = RedisRouter.connect(redis_url)
            await router.redis.flushall()
            await router.note("qa_result", **_result("1.1", "ann", "sales", "50", ["dead-air"]))
            await router.note("qa_result", **_result("1.2", "ann", "sales", "100", []))
            await router.note("qa_result", **_result("1.3", "bob", "billing", "0", ["closing"]))
            await router.note("handoff", call="1.4", agent="bob", queue="billing")
            await router.close()

        asyncio.run(fill())
        monkeypatch.setenv("IVR_REDIS_URL", redis_url)
        assert main(["qa", "report", "--since", "1h"]) == 0
        out = capsys.readouterr().out
        ann = next(line for line in out.splitlines() if line.startswith("ann"))
        assert ann.split()[:5] == ["ann", "sales", "2", "75", "1"]
        assert "dead-air x1" in ann
        assert "감사합니다 x2" in out
        assert main(["qa", "report", "--agent", "bob", "--csv"]) == 0
        rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
        assert [(r["agent"], r["queue"], r["calls"], r["score"]) for r in rows] == [
            ("bob", "billing", "1", "0.0")
        ]
        assert json.loads(rows[0]["violated"]) == {"closing": 1}


class TestValidatePacks:
    def test_demo_pack_is_valid(self, capsys: pytest.CaptureFixture[str]) -> None:
        """qa/ is validated as rule packs, not as flows."""
        assert main(["validate", str(ROOT / "qa")]) == 0

    def test_mistake_in_a_pack(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """file:line:col for a pack's mistake, next to the flows' problems."""
        (tmp_path / "ko.yaml").write_text(
            "language: ko\nrules:\n  - {id: a, must_say: [x], window: {first: -1}}\n"
        )
        assert main(["validate", str(tmp_path)]) == 1
        assert f"{tmp_path / 'ko.yaml'}:3:" in capsys.readouterr().out
