"""``ivr asterisk-conf render``: the handler and its parser."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ivr.cli.deploy import add_commands, render_command
from tests.unit.deploy.conftest import EXAMPLE, SECRETS


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ivr")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)


class TestRenderCommand:
    def test_writes_every_file_and_prints_them(
        self, environ: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit 0; one written path per line on stdout."""
        args = parse(["asterisk-conf", "render", str(tmp_path / "out"), "--deploy", str(EXAMPLE)])
        assert args.func(args) == 0
        printed = capsys.readouterr().out.split()
        assert sorted(Path(p).name for p in printed) == sorted(
            p.name for p in (tmp_path / "out").iterdir()
        )
        assert "extensions.conf" in [Path(p).name for p in printed]

    def test_default_file_comes_from_ivr_deploy_file(
        self, environ: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("IVR_DEPLOY_FILE", str(EXAMPLE))
        args = parse(["asterisk-conf", "render", str(tmp_path)])
        assert args.deploy is None
        assert render_command(args) == 0
        assert (tmp_path / "manager.conf").exists()

    def test_missing_secret_exits_2_with_the_position(
        self,
        environ: None,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Exit 2, file:line:col of the key naming the variable, nothing written."""
        monkeypatch.delenv("AMI_SECRET")
        args = parse(["asterisk-conf", "render", str(tmp_path / "out"), "--deploy", str(EXAMPLE)])
        assert render_command(args) == 2
        err = capsys.readouterr().err
        assert f"{EXAMPLE}:" in err
        assert "ami.secret_env: environment variable AMI_SECRET is not set" in err
        assert not (tmp_path / "out").exists()

    def test_bad_file_exits_2(
        self, environ: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        bad = tmp_path / "deploy.yaml"
        bad.write_text("ami: {secret_env: X}\nentries: []\n")
        args = parse(["asterisk-conf", "render", str(tmp_path / "out"), "--deploy", str(bad)])
        assert render_command(args) == 2
        assert f"{bad}:2:1: entries:" in capsys.readouterr().err

    def test_render_needs_an_outdir(self) -> None:
        with pytest.raises(SystemExit):
            parse(["asterisk-conf", "render"])


class TestFirstHour:
    def test_demo_renders_without_any_secret_set(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The README's line works as written: --demo fills marked placeholders."""
        for key in SECRETS:
            monkeypatch.delenv(key, raising=False)
        out = tmp_path / "out"
        args = parse(["asterisk-conf", "render", str(out), "--deploy", str(EXAMPLE), "--demo"])
        assert args.func(args) == 0
        err = capsys.readouterr().err
        assert "placeholder secrets for" in err and "never use these files" in err
        assert "DEMO-ONLY-ami_secret" in (out / "manager.conf").read_text()
        # Without --demo the same command says which variable to export.
        args = parse(["asterisk-conf", "render", str(tmp_path / "x"), "--deploy", str(EXAMPLE)])
        assert args.func(args) == 2

    def test_env_example_loads_in_a_shell(self) -> None:
        """docker/.env.example is valid shell: `set -a; . docker/.env.example` works."""
        import subprocess

        example = Path(__file__).resolve().parents[3] / "docker" / ".env.example"
        shown = subprocess.run(
            ["bash", "-c", f'set -ae; . "{example}"; printf %s "$IVR_API_TOKENS"'],
            capture_output=True,
            text=True,
            check=True,
        )
        assert shown.stderr == ""
        assert shown.stdout.count(":") == 5  # NAME:ROLE:TOKEN, NAME:ROLE:TOKEN:PHONE: one variable
