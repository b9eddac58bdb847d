"""The rendered Asterisk configuration: linted, least-privilege, what the engine expects."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ivr.deploy import Deployment, DeploymentError, render, write
from ivr.deploy.render import AMI_READ, AMI_WRITE, FILES
from ivr.flows.loader import load_flows
from ivr.routing_config import load_routing
from tests.unit.deploy.conftest import EXAMPLE, ROOT

ASTERISKLINT = Path(sys.executable).parent / "asterisklint"

Section = tuple[str, list[tuple[str, str]]]


def parse_conf(text: str) -> list[Section]:
    """Asterisk's config grammar, enough to read what we write: [name](templates), key=value."""
    sections: list[Section] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line)
        if header:
            sections.append((header.group(1), []))
            continue
        key, _, value = line.partition("=")
        sections[-1][1].append((key.strip(), value.lstrip(">").strip()))
    return sections


def values(sections: list[Section], name: str, key: str) -> list[str]:
    return [v for s, items in sections if s == name for k, v in items if k == key]


def lint(folder: Path, command: str = "dialplan-check") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ASTERISKLINT), command, "extensions.conf"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def rendered(example: Deployment, secrets: dict[str, str]) -> dict[str, str]:
    return render(example, environ=secrets)


@pytest.fixture
def folder(example: Deployment, secrets: dict[str, str], tmp_path: Path) -> Path:
    write(example, tmp_path, environ=secrets)
    return tmp_path


class TestAsteriskLint:
    def test_example_dialplan_has_no_error_or_warning(self, folder: Path) -> None:
        """asterisklint finds nothing at all in the rendered extensions.conf."""
        result = lint(folder)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout + result.stderr == ""

    def test_the_linter_does_see_a_broken_dialplan(self, folder: Path) -> None:
        """The check above can fail: a broken priority is reported."""
        path = folder / "extensions.conf"
        path.write_text(path.read_text() + "exten => 9,1,Set(A=${B)\n")
        result = lint(folder)
        assert result.returncode != 0
        assert "E_APP_PARSE_ERROR" in result.stdout + result.stderr

    def test_every_module_the_dialplan_uses_is_loaded(self, folder: Path) -> None:
        """modules-show's list is a subset of what modules.conf loads (autoload=no)."""
        shown = lint(folder, "modules-show").stdout
        needed = set(re.findall(r"^load => (\S+)$", shown, re.M))
        modules = parse_conf((folder / "modules.conf").read_text())
        loaded = {v for k, v in modules[0][1] if k in ("load", "require")}
        assert needed, shown
        assert needed <= loaded, needed - loaded
        assert values(modules, "modules", "autoload") == ["no"]


class TestManager:
    def test_never_grants_system_command_or_config(self, rendered: dict[str, str]) -> None:
        """The engine's AMI user reads and writes only the classes it needs."""
        conf = parse_conf(rendered["manager.conf"])
        for key in ("read", "write"):
            (granted,) = values(conf, "ivr", key)
            classes = set(granted.split(","))
            assert not classes & {"system", "command", "config", "all", "agi", "dialplan"}
        assert values(conf, "ivr", "write") == [",".join(AMI_WRITE)]
        assert values(conf, "ivr", "read") == [",".join(AMI_READ)]
        assert "originate" in AMI_WRITE

    def test_denies_everyone_then_permits_the_engine_network(
        self, rendered: dict[str, str]
    ) -> None:
        """deny comes first and covers every IPv4 address; permit names the compose network."""
        items = parse_conf(rendered["manager.conf"])[1][1]
        acl = [(k, v) for k, v in items if k in ("deny", "permit")]
        assert acl == [("deny", "0.0.0.0/0.0.0.0"), ("permit", "172.30.60.0/255.255.255.0")]

    def test_secret_comes_from_the_environment(self, rendered: dict[str, str]) -> None:
        assert values(parse_conf(rendered["manager.conf"]), "ivr", "secret") == ["ami-secret-0123"]

    def test_bindaddr_defaults_to_loopback(
        self, example: Deployment, secrets: dict[str, str]
    ) -> None:
        """Without bindaddr in the file AMI listens on 127.0.0.1 only."""
        bare = type(example.ami)(secret_env="AMI_SECRET")
        local = example.model_copy(update={"ami": bare})
        text = render(local, environ=secrets)["manager.conf"]
        assert values(parse_conf(text), "general", "bindaddr") == ["127.0.0.1"]


class TestSecrets:
    def test_missing_env_var_is_named_with_its_line(
        self, example: Deployment, secrets: dict[str, str]
    ) -> None:
        """A missing secret names the variable and the line that asks for it."""
        del secrets["AGENT_1002_PASSWORD"]
        with pytest.raises(DeploymentError) as caught:
            render(example, environ=secrets)
        (problem,) = caught.value.problems
        line = _line_of(EXAMPLE, "password_env: AGENT_1002_PASSWORD")
        assert (problem.file, problem.line) == (str(EXAMPLE), line)
        assert "AGENT_1002_PASSWORD is not set" in problem.message
        assert problem.message.startswith("agents.1.password_env:")

    @pytest.mark.parametrize(
        "bad", ["short", "has;semicolon-x", "line\nbreak-xx", " padded-secret"]
    )
    def test_unusable_secret_is_refused(
        self, example: Deployment, secrets: dict[str, str], bad: str
    ) -> None:
        secrets["AMI_SECRET"] = bad
        with pytest.raises(DeploymentError, match=r"ami\.secret_env: environment variable"):
            render(example, environ=secrets)

    def test_secret_from_a_file_relative_to_the_deployment(
        self, tmp_path: Path, secrets: dict[str, str]
    ) -> None:
        from ivr.deploy import load_deployment

        (tmp_path / "ami.secret").write_text("from-a-file-123\n")
        text = EXAMPLE.read_text().replace("secret_env: AMI_SECRET", "secret_file: ami.secret")
        text = text.replace("../dialplans", str(ROOT / "dialplans"))
        path = tmp_path / "deploy.yaml"
        path.write_text(text)
        conf = render(load_deployment(path), environ=secrets)["manager.conf"]
        assert values(parse_conf(conf), "ivr", "secret") == ["from-a-file-123"]

    def test_voicemail_pin_must_be_digits(
        self, example: Deployment, secrets: dict[str, str]
    ) -> None:
        secrets["VOICEMAIL_100_PIN"] = "12ab"
        with pytest.raises(DeploymentError, match="4 to 10 digits"):
            render(example, environ=secrets)

    def test_secret_files_are_private(self, folder: Path) -> None:
        """Files holding secrets are readable by their owner only."""
        for name in ("manager.conf", "pjsip.conf", "voicemail.conf"):
            assert (folder / name).stat().st_mode & 0o077 == 0
        assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)


class TestDialplan:
    def test_each_entry_runs_its_flow_then_checks_ivr_done_before_fallback(
        self, rendered: dict[str, str], example: Deployment
    ) -> None:
        """Answer, AGI to the engine, IVR_DONE test, and only then the fallback."""
        sections = dict(parse_conf(rendered["extensions.conf"]))
        for entry in example.entries:
            steps = [v for k, v in sections[f"ivr-{entry.name}"] if k in ("exten", "same")]
            apps = [re.sub(r"^(s,1|n|n\(done\)),", "", step) for step in steps]
            agi = apps.index(f"AGI(agi://engine:4573/{entry.flow})")
            check = apps.index('GotoIf($["${IVR_DONE}" = "1"]?done)')
            fallback = next(i for i, a in enumerate(apps) if a.startswith(("Queue(", "VoiceMail(")))
            assert apps.index("Answer()") < agi < check < fallback
            assert apps.index("Set(IVR_DONE=0)") < agi
            assert steps[-1].startswith("h,1,NoOp(")  # h runs nothing that can fail

    def test_every_flow_named_exists_in_the_flows_folder(self, rendered: dict[str, str]) -> None:
        flows, _ = load_flows([ROOT / "dialplans"])
        named = re.findall(r"AGI\(agi://engine:4573/([a-z0-9_-]+)\)", rendered["extensions.conf"])
        assert named and set(named) <= set(flows)

    def test_numbers_reach_their_entry_and_trunk_reaches_nothing_else(
        self, rendered: dict[str, str]
    ) -> None:
        sections = dict(parse_conf(rendered["extensions.conf"]))
        assert sections["from-trunk"] == [("include", "ivr-numbers")]
        assert ("exten", "+8225550100,1,Goto(ivr-main,s,1)") in sections["ivr-numbers"]

    def test_agents_dial_the_endpoints_routing_yaml_uses(
        self, rendered: dict[str, str], example: Deployment
    ) -> None:
        """Each routing.yaml agent endpoint is a PJSIP endpoint the agents context can Dial."""
        pjsip = parse_conf(rendered["pjsip.conf"])
        endpoints = {name for name, items in pjsip if ("type", "endpoint") in items}
        endpoints |= {a.id for a in example.agents}  # agents use the endpoint template
        for agent in load_routing(ROOT / "routing.yaml").agents:
            tech, _, resource = agent.endpoint.partition("/")
            assert tech == "PJSIP" and resource in endpoints
        agents = dict(parse_conf(rendered["extensions.conf"]))["agents"]
        assert ("exten", "1001,1,Dial(PJSIP/1001,30)") in agents

    def test_voicemail_box_of_the_main_flow_exists(self, rendered: dict[str, str]) -> None:
        """main.yaml leaves messages in 100@acme: voicemail.conf has that box."""
        assert "mailbox: 100@acme" in (ROOT / "dialplans" / "main.yaml").read_text()
        boxes = dict(parse_conf(rendered["voicemail.conf"]))["acme"]
        assert boxes == [("100", "4321,Acme Support")]

    def test_audiosocket_modules_only_when_asked(
        self, example: Deployment, secrets: dict[str, str]
    ) -> None:
        assert "load => app_audiosocket.so" in render(example, environ=secrets)["modules.conf"]
        off = example.model_copy(update={"audiosocket": False})
        modules = render(off, environ=secrets)["modules.conf"]
        assert "audiosocket" not in modules.split("[modules]")[1]


class TestPjsip:
    def test_agents_have_one_contact_and_are_qualified(self, rendered: dict[str, str]) -> None:
        sections = parse_conf(rendered["pjsip.conf"])
        assert values(sections, "agent-aor", "max_contacts") == ["1"]
        assert values(sections, "agent-aor", "qualify_frequency") == ["30"]
        assert values(sections, "1001", "password") == ["phone-1001-secret"]
        assert values(sections, "1001", "context") == []  # from the template: agents
        assert values(sections, "agent-endpoint", "context") == ["agents"]

    def test_trunk_registers_and_lands_in_from_trunk(self, rendered: dict[str, str]) -> None:
        sections = parse_conf(rendered["pjsip.conf"])
        assert values(sections, "trunk", "context") == ["from-trunk"]
        assert values(sections, "trunk-identify", "match") == ["sip.example.net"]
        assert values(sections, "trunk-registration", "server_uri") == ["sip:sip.example.net:5060"]
        assert values(sections, "trunk-auth", "password") == ["trunk-secret-42"]


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)
