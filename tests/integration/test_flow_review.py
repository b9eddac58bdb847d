"""Regression tests from the review of the flows code (each failed before its fix).

They run flows on the real engine over FastAGI against the Asterisk emulator
(``helpers/flow_harness.py``).
"""

from __future__ import annotations

import pytest

from ivr.emulator.caller import DialOutcome
from ivr.flows.expr import parse
from ivr.testing import Hangup, Keys
from routing.memory import Agent

from .helpers.flow_harness import flow_of, run

QUEUE = """
id: f
nodes:
  q: {type: queue, queue: sales, next: bye, on_failure: bye}
  bye: {type: hangup, say: Bye.}
"""


@pytest.mark.parametrize("when", [1.0, 3.0], ids=["while-agent-rings", "after-talking-to-agent"])
def test_caller_hangup_during_dial_releases_the_agent(when):
    r = run(
        QUEUE,
        [Hangup(on="EXEC Dial", after=when)],
        agents=[Agent("alice", "PJSIP/1001")],
        dial={"PJSIP/1001": DialOutcome("ANSWER", ring=2, talk=5)},
    )
    assert r.router.agents["alice"].state == "available", "alice stays 'reserved' for ever"
    assert not r.router._waiting, "a dead call's ticket stays in the queue"


@pytest.mark.parametrize("dest", ["00442079460958@trunk", "1001&PJSIP/+442079460958@trunk"])
def test_transfer_allow_list_cannot_be_bypassed(dest):
    r = run(
        f"""
id: f
nodes:
  s: {{type: set, variables: {{dest: "{dest}"}}, next: t}}
  t: {{type: transfer, to: "${{dest}}", on_failure: bye}}
  bye: {{type: hangup}}
""",
        allow=(),
    )
    assert r.call.dialled == [], f"dialled {r.call.dialled} with an empty allow-list"


def test_subflow_uses_its_own_defaults():
    main = flow_of(
        "id: main\ndefaults: {retries: 3}\nnodes:\n  s: {type: subflow, flow: sub, next: bye}\n  bye: {type: hangup}\n"
    )
    sub = flow_of(
        "id: sub\ndefaults: {retries: 0}\nnodes:\n"
        "  m: {type: menu, prompt: One., options: [{digit: 1, goto: r}], on_failure: r}\n  r: {type: return}\n"
    )
    r = run(main, flows={"sub": sub})
    assert (
        sum(e["event"] == "no_input" for e in r.trace.events) == 1
    )  # sub says retries: 0; gets 4 tries


@pytest.mark.parametrize("var", ["event", "kind"])
def test_gather_variable_name_does_not_crash_the_call(var):
    r = run(
        f"id: f\nnodes:\n  g: {{type: gather, prompt: Enter., variable: {var}, next: bye, on_failure: bye}}\n"
        "  bye: {type: hangup}\n",
        [Keys("12#")],
    )
    assert not r.errors, r.errors


def test_say_number_of_odd_text_does_not_crash():
    r = run(
        'id: f\nnodes:\n  s: {type: set, variables: {bal: "1-800"}, next: n}\n'
        '  n: {type: say, value: "${bal}", as: number, next: bye}\n  bye: {type: hangup}\n'
    )
    assert not r.errors, r.errors


def test_terminator_after_a_full_entry_is_not_the_next_answer():
    r = run(
        """
id: f
nodes:
  acct: {type: gather, prompt: "Account, then pound.", variable: acct, min_length: 4, max_length: 4, next: pin, on_failure: bye}
  pin: {type: gather, prompt: "PIN.", variable: pin, min_length: 4, max_length: 4, invalid: {prompt: "Not valid."}, next: bye, on_failure: bye}
  bye: {type: hangup}
""",
        [Keys("1234#"), Keys("5678")],
    )
    assert "Not valid." not in r.trace.prompts, r.trace.events


def test_sensitive_value_stays_sensitive_when_copied_or_spoken():
    r = run(
        """
id: f
nodes:
  g: {type: gather, prompt: "PIN?", variable: pin, sensitive: true, next: c, on_failure: bye}
  c: {type: set, variables: {pin_copy: "${pin}"}, next: p}
  p: {type: play, say: "You entered ${pin}", next: bye}
  bye: {type: hangup}
""",
        [Keys("4321#")],
    )
    assert "pin_copy" in r.trace.sensitive and not any("4321" in p for p in r.trace.prompts)


def test_long_numbers_compare_exactly():
    # 19-digit card / account numbers are keypad text compared with a number literal
    assert not parse("x == 4111111111111111111").test({"x": "4111111111111111112"})
