"""Named HTTP services: the ``IVR_SERVICES`` setting, the demo service on its port, and
``${service:NAME}`` refused at load (with its line) anywhere but the very start of an
http node's url, or naming a service the engine does not have."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from ivr.cli import main
from ivr.config import load_settings, service_urls
from ivr.errors import ConfigError
from ivr.flows.loader import load_flow
from ivr.flows.problems import FlowError
from ivr.flows.registry import FlowRegistry
from ivr.flows.testing import load_tests, run_test

ROOT = Path(__file__).resolve().parents[3]
BILLING = ROOT / "dialplans" / "billing.yaml"

LOOKUP = textwrap.dedent(
    """\
    id: lookup
    nodes:
      fetch:
        type: http
        url: ${service:crm}/accounts/${account}
        next: bye
        on_error: bye
      bye: {type: hangup}
    """
)


def line_of(path: Path, text: str) -> int:
    """The 1-based line of ``path`` that holds ``text``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


class TestSetting:
    def test_services_by_name(self) -> None:
        """IVR_SERVICES gives base URLs by name (spaces and a trailing '/' dropped)."""
        environ = {"IVR_SERVICES": " crm=https://crm.example.com/api/ , erp=http://10.0.0.5:8080"}
        assert service_urls(load_settings(environ=environ)) == {
            "crm": "https://crm.example.com/api",
            "erp": "http://10.0.0.5:8080",
            "demo": "http://127.0.0.1:8089",
        }

    def test_the_demo_service_follows_its_port(self) -> None:
        """``demo`` is the demo account service on IVR_DEMO_API_PORT, unless IVR_SERVICES
        names it; with the port 0 and no ``demo`` there, there is none."""
        moved = load_settings(environ={"IVR_DEMO_API_PORT": "18089"})
        assert service_urls(moved) == {"demo": "http://127.0.0.1:18089"}
        named = {"IVR_DEMO_API_PORT": "18089", "IVR_SERVICES": "demo=https://demo.example.com"}
        assert service_urls(load_settings(environ=named)) == {"demo": "https://demo.example.com"}
        assert service_urls(load_settings(environ={"IVR_DEMO_API_PORT": "0"})) == {}

    @pytest.mark.parametrize(
        ("value", "says"),
        [
            ("crm", "'crm' is not NAME=URL; use NAME=http(s)://host[:port][/path]"),
            ("crm=ftp://files.example.com", "is not an http:// or https:// URL with a host"),
            ("crm=crm.example.com", "is not an http:// or https:// URL with a host"),
            ("crm=https://crm.example.com/?key=1", "has a query or fragment"),
            ("crm=http://crm.example.com:99999", "is not a URL"),
            ("1crm=https://crm.example.com", "'1crm' is not a service name"),
            ("crm=https://a.example.com,crm=https://b.example.com", "'crm' is named twice"),
        ],
    )
    def test_a_bad_value_names_the_variable_and_the_form(self, value: str, says: str) -> None:
        """Each wrong form stops the engine naming IVR_SERVICES and what is allowed."""
        with pytest.raises(ConfigError) as error:
            load_settings(environ={"IVR_SERVICES": value})
        message = str(error.value)
        assert message.startswith("environment variable IVR_SERVICES: "), message
        assert says in message

    def test_the_settings_file_takes_a_mapping(self, tmp_path: Path) -> None:
        """In the settings file, services are a mapping (or the same text); a bad one
        names the file and the key."""
        config = tmp_path / "engine.yaml"
        config.write_text("services:\n  crm: https://crm.example.com\n")
        settings = load_settings(config_file=config, environ={})
        assert service_urls(settings)["crm"] == "https://crm.example.com"
        config.write_text("services: {crm: crm.example.com}\n")
        with pytest.raises(ConfigError, match=r"engine.yaml: services: crm: 'crm.example.com'"):
            load_settings(config_file=config, environ={})


class TestFlowChecks:
    def test_a_known_service_opens_the_url(self) -> None:
        """A flow naming a service the engine has loads; so does any name when the
        loader is not told the engine's services."""
        assert load_flow("lookup.yaml", LOOKUP, services={"crm", "demo"}).id == "lookup"
        assert load_flow("lookup.yaml", LOOKUP).id == "lookup"

    def test_an_unknown_service_is_refused_with_its_line(self) -> None:
        """The problem points at the url and lists the services the engine has."""
        with pytest.raises(FlowError) as error:
            load_flow("lookup.yaml", LOOKUP, services={"demo"})
        assert [str(p) for p in error.value.problems] == [
            "lookup.yaml:5:10: ${service:crm}: no service named 'crm'; services: demo "
            "(IVR_SERVICES=crm=https://... adds it)"
        ]

    def test_a_reload_refuses_an_unknown_service(self, tmp_path: Path) -> None:
        """The running engine's registry knows its services: a flow naming another is
        refused with its line, and nothing is served in its place."""
        (tmp_path / "lookup.yaml").write_text(LOOKUP)
        registry = FlowRegistry(tmp_path, services={"demo"})
        problems = registry.reload()
        assert [(p.line, p.column) for p in problems] == [(5, 10)]
        assert "no service named 'crm'" in problems[0].message
        assert registry.get("lookup") is None

    def test_the_demo_flow_needs_the_demo_service(self) -> None:
        """billing.yaml reaches the demo service by name: refused at its url's line by
        an engine without one (the demo port 0, and no ``demo`` in IVR_SERVICES)."""
        with pytest.raises(FlowError) as error:
            load_flow(
                BILLING, services=service_urls(load_settings(environ={"IVR_DEMO_API_PORT": "0"}))
            )
        line = line_of(BILLING, "url: ${service:demo}/accounts/${account}")
        assert str(error.value).startswith(f"{BILLING}:{line}:10: ${{service:demo}}: no service")

    def test_validate_knows_the_engines_services(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`ivr validate` refuses a service the settings do not define, as `ivr serve`
        would; with the service in --config's file, the same flows are valid."""
        monkeypatch.setenv("IVR_DEMO_API_PORT", "0")
        monkeypatch.delenv("IVR_SERVICES", raising=False)
        assert main(["validate", str(ROOT / "dialplans")]) == 1
        line = line_of(BILLING, "url: ${service:demo}")
        assert f"billing.yaml:{line}:10: ${{service:demo}}: no service named 'demo'" in (
            capsys.readouterr().out
        )
        config = tmp_path / "engine.yaml"
        config.write_text("services: {demo: 'http://127.0.0.1:18089'}\n")
        assert main(["validate", str(ROOT / "dialplans"), "--config", str(config)]) == 0


class TestFlowTests:
    def test_a_scripted_url_may_only_open_with_a_service(self, tmp_path: Path) -> None:
        """A flow test's scripted answer follows the flows' rule, with its line."""
        path = tmp_path / "lookup.yaml"
        path.write_text(
            "flow: lookup\ntests:\n  - name: found\n    http:\n"
            "      - {url: 'http://x/${service:crm}/accounts/1', body: {}}\n"
        )
        with pytest.raises(FlowError) as error:
            load_tests(path)
        assert f"{path}:5:" in str(error.value)
        assert "tests.0.http.0.url: ${service:crm} must open the url" in str(error.value)

    def test_a_scripted_url_naming_an_unknown_service_fails_the_test(self, tmp_path: Path) -> None:
        """The test fails before any call, naming the service and the engine's."""
        path = tmp_path / "lookup.yaml"
        path.write_text(
            "flow: lookup\ntests:\n  - name: found\n    http:\n"
            "      - {url: '${service:crm}/accounts/1', body: {}}\n"
        )
        test = load_tests(path).tests[0]
        flow = load_flow("lookup.yaml", LOOKUP)
        outcome = asyncio.run(
            run_test(test, flow, {"lookup": flow}, tmp_path, services={"demo": "http://d"})
        )
        assert outcome.failures == [
            "http: ${service:crm}: no service named 'crm'; services: demo "
            "(IVR_SERVICES=crm=https://... adds it)"
        ]
