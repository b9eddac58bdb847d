"""The deployment file: positioned errors, secrets by reference only, no injection."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.deploy import Deployment, DeploymentError, load_deployment, render
from tests.unit.deploy.conftest import ROOT, SECRETS

GOOD = f"""\
flows_dir: {ROOT / "dialplans"}
ami:
  secret_env: AMI_SECRET
agents:
  - id: "1001"
    extension: "1001"
    password_env: AGENT_1001_PASSWORD
queues:
  - name: fallback
entries:
  - name: main
    flow: main
    numbers: ["100"]
    fallback: {{queue: fallback}}
"""


def load(text: str) -> Deployment:
    return load_deployment("deploy.yaml", text)


def problems(text: str) -> list[str]:
    with pytest.raises(DeploymentError) as caught:
        load(text)
    return [str(p) for p in caught.value.problems]


class TestPositionedErrors:
    def test_good_file_loads(self) -> None:
        deployment = load(GOOD)
        assert deployment.entries[0].flow == "main"
        assert deployment.sip.bind == "127.0.0.1"  # loopback unless the file says otherwise

    def test_unknown_key_names_line_key_and_what_is_allowed(self) -> None:
        (message,) = problems(GOOD.replace("    flow: main\n", "    flow: main\n    flw: x\n"))
        assert message.startswith("deploy.yaml:13:5: entries.0.flw: unknown key; allowed: name,")
        assert "flow" in message and "fallback" in message

    def test_a_literal_secret_is_refused(self) -> None:
        """password: ... is not a key: secrets only by env var or file."""
        text = GOOD.replace("    password_env: AGENT_1001_PASSWORD\n", "    password: hunter22\n")
        (message,) = problems(text)
        assert message.startswith("deploy.yaml:7:5: agents.0.password: unknown key (secrets")

    def test_both_or_neither_secret_source_is_refused(self) -> None:
        text = GOOD.replace("  secret_env: AMI_SECRET\n", "  user: ivr\n")
        (message,) = problems(text)
        assert message.startswith("deploy.yaml:2:1: ami:")
        assert "exactly one of secret_env" in message

    def test_secret_may_not_be_an_ivr_variable(self) -> None:
        """Flows can read IVR_* variables, so a secret named IVR_* is refused."""
        (message,) = problems(GOOD.replace("secret_env: AMI_SECRET", "secret_env: IVR_AMI"))
        assert message.startswith("deploy.yaml:3:3: ami.secret_env: IVR_AMI: a secret may not")

    def test_unquoted_number_is_refused_with_advice(self) -> None:
        (message,) = problems(GOOD.replace('numbers: ["100"]', "numbers: [+8225550100]"))
        assert message.startswith("deploy.yaml:13:15: entries.0.numbers.0: write it in quotes")

    def test_unknown_flow_names_the_flows_there_are(self) -> None:
        (message,) = problems(GOOD.replace("flow: main", "flow: mian"))
        assert message.startswith("deploy.yaml:12:5: entries.0.flow: no valid flow 'mian'")
        assert "'billing', 'main', 'support'" in message

    def test_undeclared_fallback_queue(self) -> None:
        (message,) = problems(GOOD.replace("{queue: fallback}", "{queue: sales}"))
        assert message.startswith("deploy.yaml:14:16: entries.0.fallback.queue: no queue 'sales'")

    def test_duplicate_number_points_at_both(self) -> None:
        (message,) = problems(GOOD.replace('["100"]', '["1001"]'))
        assert message.startswith("deploy.yaml:13:15: entries.0.numbers.0: number '1001'")
        assert "(line 6)" in message

    def test_reserved_section_name(self) -> None:
        text = GOOD.replace("name: fallback", "name: general").replace(
            "queue: fallback", "queue: general"
        )
        assert any("reserves" in p for p in problems(text))

    def test_yaml_syntax_error_is_positioned(self) -> None:
        (message,) = problems(GOOD + "  - [unclosed\n")
        assert message.startswith("deploy.yaml:")
        assert "YAML syntax" in message

    def test_duplicate_yaml_key_is_an_error(self) -> None:
        (message,) = problems(GOOD.replace("  - name: main\n", "  - name: main\n    name: x\n"))
        assert "duplicate key 'name'" in message


class TestInjection:
    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ("name: main", "name: 'main,1,System(rm)'"),
            ("name: main", "name: 'x;y'"),
            ("flow: main", "flow: 'main)'"),
            ('["100"]', '["100\\n"]'),
            ('["100"]', '["${EVIL}"]'),
            ("name: fallback", "name: 'fallback]\\n[x'"),
            ('id: "1001"', "id: '1001(x)'"),
        ],
    )
    def test_dialplan_grammar_characters_are_refused(self, old: str, new: str) -> None:
        """Anything that could change the dialplan's meaning is refused, with its key."""
        messages = problems(GOOD.replace(old, new))
        assert any("is not allowed here" in m for m in messages), messages

    def test_engine_host_cannot_carry_a_path_or_port(self) -> None:
        text = GOOD + "engine:\n  host: 'evil/x:1'\n"
        (message,) = problems(text)
        assert message.startswith("deploy.yaml:16:3: engine.host:")

    @settings(max_examples=200, deadline=None)
    @given(st.text(min_size=1, max_size=30))
    def test_any_accepted_entry_name_is_plain(self, name: str) -> None:
        """Whatever name is accepted, the rendered dialplan keeps its shape."""
        text = GOOD.replace("name: main", f"name: {name!r}".replace("\\", "\\\\"))
        try:
            deployment = load(text)
        except DeploymentError:
            return
        accepted = deployment.entries[0].name
        assert accepted.replace("_", "").replace("-", "").isalnum() and accepted.isascii()
        conf = render(deployment, environ=SECRETS)["extensions.conf"]
        assert f"[ivr-{accepted}]" in conf
        headers = [line for line in conf.splitlines() if line.startswith("[")]
        assert headers == [f"[{h}]" for h in SECTION_HEADERS] + [f"[ivr-{accepted}]"]


SECTION_HEADERS = ["general", "globals", "from-trunk", "ivr-numbers", "agents", "ivr-callback"]


class TestExample:
    def test_example_loads(self, example: Deployment) -> None:
        assert [e.flow for e in example.entries] == ["main", "billing", "support"]
        assert example.source.file.endswith("deploy.example.yaml")

    def test_example_holds_no_secret(self) -> None:
        """Only references: every *_env / *_file key, never a password value."""
        text = (ROOT / "asterisk_conf" / "deploy.example.yaml").read_text()
        for line in text.splitlines():
            key = line.split("#", 1)[0].split(":", 1)[0].strip().lstrip("- ")
            if any(word in key for word in ("password", "secret", "pin")):
                assert key.endswith(("_env", "_file")), line

    def test_paths_are_relative_to_the_file(self, tmp_path: Path) -> None:
        (tmp_path / "flows").mkdir()
        for name in ("main.yaml", "billing.yaml"):  # main uses billing as a subflow
            (tmp_path / "flows" / name).write_text((ROOT / "dialplans" / name).read_text())
        path = tmp_path / "deploy.yaml"
        path.write_text(GOOD.replace(str(ROOT / "dialplans"), "flows"))
        assert load_deployment(path).base == tmp_path
