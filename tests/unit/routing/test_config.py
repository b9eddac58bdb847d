"""``routing.yaml`` problems name the file, line and key, and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.flows.problems import FlowError
from ivr.routing_config import load_routing


def problems(text: str) -> str:
    with pytest.raises(FlowError) as caught:
        load_routing("routing.yaml", text)
    return str(caught.value)


def test_max_contacts_is_gone() -> None:
    """Chat and email do not exist: ``max_contacts`` is an unknown key that lists the allowed."""
    message = problems("agents:\n  - {id: a, endpoint: PJSIP/1, max_contacts: {voice: 1}}\n")
    assert "routing.yaml:2:" in message and "unknown key 'max_contacts'" in message
    assert "site" in message and "group" in message and "wrap_up" in message


def test_sites_groups_and_wrap_up() -> None:
    """Agents carry a site, a routing group and their own wrap-up; queues their wrap-up,
    group and site preference; a step can widen to every site."""
    config = load_routing(
        "routing.yaml",
        "agents:\n"
        "  - {id: a, endpoint: PJSIP/1, site: seoul, group: kr, wrap_up: 5, languages: [ko]}\n"
        "  - {id: b, endpoint: PJSIP/2, team: north}\n"
        "queues:\n"
        "  q:\n"
        "    {wrap_up: 10, group: kr, prefer_site: true, steps: [{after: 30, all_sites: true}]}\n",
    )
    a, b = config.agents
    assert (a.site, a.group, a.wrap_up, b.site, b.group, b.wrap_up) == (
        "seoul",
        "kr",
        5,
        "",
        "default",
        None,
    )
    queue = config.queues["q"]
    assert (queue.wrap_up, queue.group, queue.prefer_site) == (10, "kr", True)
    assert queue.steps[0].all_sites
    assert load_routing("r.yaml", "queues: {q: {}}").queues["q"].wrap_up == 0
    from routing.config import agent_of

    value = agent_of(a)
    assert (value.languages, value.site, value.group, value.wrap_up) == (("ko",), "seoul", "kr", 5)
    assert agent_of(b).skills == {"team.north": 1}


def test_bad_wrap_up_and_site_name_the_key() -> None:
    message = problems("queues:\n  q:\n    wrap_up: -1\n")
    assert "routing.yaml:3:" in message and "wrap_up" in message
    message = problems("agents:\n  - {id: a, endpoint: PJSIP/1, site: 'two words'}\n")
    assert "routing.yaml:2:" in message and "site" in message


def test_a_step_that_does_nothing_lists_what_it_may_do() -> None:
    message = problems("queues:\n  q:\n    steps: [{after: 5}]\n")
    assert "all_sites" in message and "overflow" in message


def test_dial_options_are_letters_only() -> None:
    """Options reach Dial as one argument: letters only, so no macro or gosub rides in."""
    message = problems('queues:\n  q:\n    dial_options: "U(evil)"\n')
    assert "routing.yaml:3:" in message and "dial_options" in message
    config = load_routing("r.yaml", "queues: {q: {dial_options: tT, ring_timeout: 15}}")
    assert (config.queues["q"].dial_options, config.queues["q"].ring_timeout) == ("tT", 15)


def test_unknown_keys_list_what_is_allowed() -> None:
    message = problems("agents:\n  - {id: a, endpoint: PJSIP/1, skils: {x: 1}}\n")
    assert "unknown key 'skils'; allowed: id, name, endpoint, skills" in message


def test_flow_test_files_list_what_is_allowed(tmp_path: Path) -> None:
    from ivr.flows.testing import load_tests

    path = tmp_path / "t.yaml"
    path.write_text("flow: main\ntests:\n  - name: x\n    scrip: []\n")
    with pytest.raises(FlowError) as caught:
        load_tests(path)
    assert str(caught.value).startswith(f"{path}:4:5: tests.0.scrip: unknown key 'scrip'")
    assert "allowed: name, caller" in str(caught.value) and "script" in str(caught.value)
