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


def test_max_contacts_per_channel() -> None:
    config = load_routing(
        "routing.yaml",
        "agents:\n  - {id: a, endpoint: PJSIP/1, max_contacts: {voice: 1, chat: 3}}\n",
    )
    assert config.agents[0].max_contacts == {"voice": 1, "chat": 3}
    assert load_routing("r.yaml", "agents:\n  - {id: b, endpoint: PJSIP/2}\n").agents[
        0
    ].max_contacts == {"voice": 1}


def test_two_calls_at_once_is_refused_at_its_line() -> None:
    message = problems("agents:\n  - id: a\n    endpoint: PJSIP/1\n    max_contacts: {voice: 2}\n")
    assert message.startswith("routing.yaml:4:5: agents.0.max_contacts: ")
    assert "voice must be 1" in message


def test_unknown_channel_lists_the_allowed_ones() -> None:
    message = problems("agents:\n  - {id: a, endpoint: PJSIP/1, max_contacts: {fax: 1}}\n")
    assert "routing.yaml:2:" in message
    assert "voice" in message and "chat" in message and "email" in message


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
